package dev.tether.internal

import dev.tether.TetherError
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicLong

/**
 * A native client pointer that is never freed under a running call, and freed exactly once.
 *
 * [calls] starts at 1 (the handle's own reference). Every call increments it for its
 * duration; [destroy] drops the handle's reference once. Whoever brings it to 0 frees the
 * pointer, so a call in flight (a blocked poll, a send from another thread) delays the free
 * until it returns, and no call can start after it (uniffi's scheme). [onFreed] runs right
 * after the free, on the thread that did it.
 */
internal class NativeHandle(private val pointer: Long, private val onFreed: () -> Unit = {}) {
    private val calls = AtomicLong(1)
    private val destroyed = AtomicBoolean(false)

    /** Runs [block] with the pointer; throws [TetherError.Closed] once the handle is released. */
    inline fun <R> use(block: (Long) -> R): R {
        acquire()
        try {
            return translate { block(pointer) }
        } finally {
            release()
        }
    }

    /** Gives the handle's own reference up; the pointer is freed when no call is in flight. */
    fun destroy() {
        if (destroyed.compareAndSet(false, true)) release()
    }

    @PublishedApi
    internal fun acquire() {
        // Retries only when another thread changed the count in between.
        while (true) {
            val c = calls.get()
            if (c == 0L) throw TetherError.Closed("the session has ended and its native client was released")
            if (calls.compareAndSet(c, c + 1)) return
        }
    }

    @PublishedApi
    internal fun release() {
        if (calls.decrementAndGet() == 0L) {
            NativeBridge.free(pointer)
            onFreed()
        }
    }
}

/** Runs [block], turning a [NativeException] into the matching [TetherError]. */
internal inline fun <R> translate(block: () -> R): R = try {
    block()
} catch (e: NativeException) {
    throw TetherError.of(e.status, e.message ?: "native call failed")
}
