package dev.tether.internal

import java.lang.ref.Cleaner
import java.lang.ref.PhantomReference
import java.lang.ref.ReferenceQueue
import java.util.concurrent.ConcurrentHashMap

/**
 * Runs an action once an object has become unreachable: with java.lang.ref.Cleaner where
 * the runtime has it (any JVM ≥ 9, Android API 33+), else (older Android) with phantom
 * references drained by one daemon thread. The action must not reference the object.
 */
internal object Reaper {
    private val cleaner: Cleaner? = try {
        Cleaner.create()
    } catch (e: LinkageError) {
        null
    }

    fun register(owner: Any, action: () -> Unit) {
        val c = cleaner
        if (c != null) c.register(owner) { action() } else Phantoms.register(owner, action)
    }

    private object Phantoms {
        private val queue = ReferenceQueue<Any>()
        private val live = ConcurrentHashMap.newKeySet<Ref>()

        private class Ref(owner: Any, val action: () -> Unit) : PhantomReference<Any>(owner, queue)

        init {
            val t = Thread(::drain, "tether-reaper")
            t.isDaemon = true
            t.start()
        }

        fun register(owner: Any, action: () -> Unit) {
            live += Ref(owner, action)
        }

        private fun drain() {
            while (true) {
                val ref = queue.remove() as Ref
                live -= ref
                try {
                    ref.action()
                } catch (e: Exception) {
                    // A cleanup must not kill the reaper.
                }
            }
        }
    }
}
