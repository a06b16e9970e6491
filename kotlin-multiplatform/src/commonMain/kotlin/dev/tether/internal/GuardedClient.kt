@file:OptIn(ExperimentalAtomicApi::class)

package dev.tether.internal

import dev.tether.TetherError
import dev.tether.TetherStats
import kotlin.concurrent.atomics.AtomicBoolean
import kotlin.concurrent.atomics.AtomicLong
import kotlin.concurrent.atomics.ExperimentalAtomicApi
import kotlin.concurrent.atomics.decrementAndFetch
import kotlin.concurrent.atomics.incrementAndFetch

/**
 * A native client that is never freed under a running call, and freed exactly once: the
 * in-flight counter of both platforms (uniffi's scheme).
 *
 * [calls] starts at 1 (the handle's own reference, which the drain coroutine gives up after
 * the last event). Every call increments it for its duration; whoever brings it to 0 frees
 * the client (and parks the count at [RELEASED]), so a call in flight (a send from another
 * thread) delays the free until it returns, and no call reaches the client after it.
 * [onFreed] runs right after the free.
 *
 * A call takes and gives its count with one atomic add each, not a compare-and-set loop:
 * a sender and the poller's drain count at once, and the JIT, which had compiled the
 * loop's retry as a branch never taken, threw the send path (and the drain's) out and
 * compiled it again each time a compare-and-set lost that race in the middle of a stream.
 */
internal class GuardedClient(
    @PublishedApi internal val raw: RawClient,
    private val onFreed: () -> Unit,
) : NativeClient {
    private val calls = AtomicLong(1)
    private val destroyed = AtomicBoolean(false)

    /** Runs [block] with the raw client; throws [TetherError.Closed] once it was released. */
    inline fun <R> use(block: (RawClient) -> R): R {
        acquire()
        try {
            return block(raw)
        } finally {
            release()
        }
    }

    /** Gives the handle's own reference up; the client is freed when no call is in flight. */
    fun destroy() {
        if (destroyed.compareAndSet(false, true)) release()
    }

    @PublishedApi
    internal fun acquire() {
        // At most 1 before the add: the handle's reference was given up and no call holds
        // the client (at 0, or freed at RELEASED): undo, which frees it if it reached 0.
        if (calls.incrementAndFetch() <= 1L) {
            release()
            throw TetherError.Closed("the session has ended and its native client was released")
        }
    }

    @PublishedApi
    internal fun release() {
        // Of the threads that bring the count to 0 (a refused call's undo may too), the one
        // that parks it at RELEASED frees: once, as nothing brings it back to 0.
        if (calls.decrementAndFetch() == 0L && calls.compareAndSet(0L, RELEASED)) {
            raw.free()
            onFreed()
        }
    }

    override fun sendText(text: String): Boolean = use { it.sendText(text) }
    override fun sendBinary(data: ByteArray): Boolean = use { it.sendBinary(data) }
    override fun sendTrackedText(text: String): Long? = use { it.sendTrackedText(text) }
    override fun sendTrackedBinary(data: ByteArray): Long? = use { it.sendTrackedBinary(data) }
    override fun ack(id: Long) = use { it.ack(id) }
    override fun outboxPending(): Long = use { it.outboxPending() }
    override fun close(code: Int, reason: String) = use { it.close(code, reason) }
    override fun pause() = use { it.pause() }
    override fun resume() = use { it.resume() }
    override fun networkChanged(available: Boolean) = use { it.networkChanged(available) }
    override fun reconnect() = use { it.reconnect() }
    override fun flush() = use { it.flush() }
    override fun setHeader(name: String, value: String?) = use { it.setHeader(name, value) }
    override fun stats(): TetherStats = use { it.stats() }

    private companion object {
        /** The count once freed: far below 0, so that refused calls' adds never bring it back up. */
        const val RELEASED = Long.MIN_VALUE / 2
    }
}
