@file:OptIn(ExperimentalAtomicApi::class)

package dev.tether.internal

import dev.tether.TetherError
import dev.tether.TetherStats
import kotlin.concurrent.atomics.AtomicBoolean
import kotlin.concurrent.atomics.AtomicLong
import kotlin.concurrent.atomics.ExperimentalAtomicApi
import kotlin.concurrent.atomics.decrementAndFetch

/**
 * A native client that is never freed under a running call, and freed exactly once: the
 * in-flight counter of both platforms (uniffi's scheme).
 *
 * [calls] starts at 1 (the handle's own reference, which the drain coroutine gives up after
 * the last event). Every call increments it for its duration; whoever brings it to 0 frees
 * the client, so a call in flight (a send from another thread) delays the free until it
 * returns, and no call can start after it. [onFreed] runs right after the free.
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
        // Retries only when another thread changed the count in between.
        for (attempt in 0 until Int.MAX_VALUE) {
            val c = calls.load()
            if (c == 0L) throw TetherError.Closed("the session has ended and its native client was released")
            if (calls.compareAndSet(c, c + 1)) return
        }
        error("the in-flight counter never settled")
    }

    @PublishedApi
    internal fun release() {
        if (calls.decrementAndFetch() == 0L) {
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
}
