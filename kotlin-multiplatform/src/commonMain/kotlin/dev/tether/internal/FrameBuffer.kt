@file:OptIn(ExperimentalAtomicApi::class)

package dev.tether.internal

import dev.tether.Frame
import kotlin.concurrent.atomics.AtomicBoolean
import kotlin.concurrent.atomics.AtomicInt
import kotlin.concurrent.atomics.ExperimentalAtomicApi
import kotlin.concurrent.atomics.decrementAndFetch
import kotlin.concurrent.atomics.incrementAndFetch
import kotlin.time.Duration
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.ChannelIterator
import kotlinx.coroutines.channels.ChannelResult
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow

/**
 * A session's received frames between its drain and the app: a channel of [capacity]
 * (TetherConfig.incomingBuffer) that the app reads, plus a count of the frames in it, so
 * that a drain that found it full waits until the app has taken half of them
 * ([awaitRoom]), not for each frame. A drain woken for every frame the app takes pays a
 * wakeup and a thread hop per frame while the app reads a full buffer; woken at half, it
 * pays one per capacity / 2 frames and refills in one go. What the app sees is the same:
 * frames in order, at most [capacity] waiting, none dropped.
 */
internal class FrameBuffer(private val capacity: Int) {
    private val channel = Channel<Frame>(capacity)

    /** Frames in [channel], about: a take may be counted before the put it follows. */
    private val queued = AtomicInt(0)

    /** A drain waits in [awaitRoom]: the app's take that reaches [lowWater] signals [room]. */
    private val drainWaiting = AtomicBoolean(false)
    private val room = Wakeup()

    /** The drain goes on once this many frames (or fewer) wait. */
    private val lowWater = capacity / 2

    /** Sends [frame] if there is room: true when taken, false when full; closed: dropped (true). */
    fun trySend(frame: Frame): Boolean {
        val sent = channel.trySend(frame)
        if (sent.isSuccess) {
            queued.incrementAndFetch()
            return true
        }
        // A closed channel: nobody takes frames any more.
        return sent.isClosed
    }

    /**
     * Suspends until the app has taken frames down to half the capacity, the buffer was
     * closed, [wakeDrain] was called, or [timeout] passed (null: no timeout). It may return
     * early: the caller tries again, and waits again while it is still full.
     */
    suspend fun awaitRoom(timeout: Duration?) {
        // Register, then check, so that a take in between is not missed.
        drainWaiting.store(true)
        if (queued.load() <= lowWater || channel.isClosedForSend) {
            // No signal is on its way unless a take won the flag first: then it is left
            // for the next wait, which returns early because of it (harmless).
            drainWaiting.store(false)
            return
        }
        if (timeout == null) {
            room.await()
        } else {
            // A timer's signal left over is harmless: the caller checks again.
            room.awaitWithin(timeout)
        }
        drainWaiting.store(false)
    }

    /** Makes a waiting [awaitRoom] return (a close was asked: it goes on in slices). */
    fun wakeDrain() {
        room.signal()
    }

    /** The app took a frame. */
    private fun taken() {
        if (queued.decrementAndFetch() <= lowWater && drainWaiting.load() && drainWaiting.compareAndSet(true, false)) {
            room.signal()
        }
    }

    private fun <T> took(result: ChannelResult<T>): ChannelResult<T> {
        if (result.isSuccess) taken()
        return result
    }

    suspend fun receiveCatching(): ChannelResult<Frame> = took(channel.receiveCatching())

    suspend fun receive(): Frame = channel.receive().also { taken() }

    val isEmpty: Boolean get() = channel.isEmpty
    val isClosedForReceive: Boolean get() = channel.isClosedForReceive

    fun iterator(): ChannelIterator<Frame> = object : ChannelIterator<Frame> {
        private val inner = channel.iterator()
        override suspend fun hasNext(): Boolean = inner.hasNext()
        override fun next(): Frame = inner.next().also { taken() }
    }

    /** The frames as a flow (several collectors share them, as with `receiveAsFlow`). */
    fun asFlow(): Flow<Frame> = flow {
        while (true) {
            val result = receiveCatching()
            if (result.isSuccess) {
                emit(result.getOrThrow())
            } else {
                // Closed with a cause (cancelled): report it, as receiveAsFlow does.
                result.exceptionOrNull()?.let { throw it }
                break
            }
        }
    }

    /** The session ended: the app reads what is left, then the end. */
    fun close() {
        channel.close()
        wakeDrain()
    }

    /** Nobody reads any more: what is buffered is dropped. */
    fun cancel() {
        channel.cancel()
        wakeDrain()
    }
}
