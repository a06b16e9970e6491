@file:OptIn(ExperimentalNativeApi::class)

package dev.tether.internal

import kotlin.concurrent.AtomicReference
import kotlin.experimental.ExperimentalNativeApi
import kotlin.native.ref.WeakReference

/**
 * [Binding.onUnreachable] for Kotlin/Native, which has no Cleaner that can be tied to an
 * object it does not own: each owner is held weakly with its action, and [sweep] runs the
 * actions of the owners the GC has collected. Sweeps happen when a poller's wait times out,
 * when a session opens and when the live clients are counted, so a forgotten session is
 * closed (and then freed by its poller) a few seconds after a GC collected it.
 */
internal object Unreachables {
    private class Entry(val owner: WeakReference<Any>, val action: () -> Unit)

    /** Copy-on-write: a handful of sessions per app, registered once each. */
    private val entries = AtomicReference<List<Entry>>(emptyList())

    fun register(owner: Any, action: () -> Unit) {
        val entry = Entry(WeakReference(owner), action)
        // Retries only when another thread changed the list in between.
        while (true) {
            val current = entries.value
            if (entries.compareAndSet(current, current + entry)) return
        }
    }

    fun sweep() {
        var collected: List<Entry>
        while (true) {
            val current = entries.value
            collected = current.filter { it.owner.value == null }
            if (collected.isEmpty()) return
            if (entries.compareAndSet(current, current - collected.toSet())) break
        }
        for (entry in collected) {
            try {
                entry.action()
            } catch (e: Throwable) {
                // A cleanup action must not stop the others (nor the poller that runs them).
            }
        }
    }
}
