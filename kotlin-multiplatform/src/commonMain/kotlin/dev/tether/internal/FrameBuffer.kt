@file:OptIn(ExperimentalAtomicApi::class)

package dev.tether.internal

import dev.tether.Frame
import kotlin.concurrent.Volatile
import kotlin.concurrent.atomics.AtomicBoolean
import kotlin.concurrent.atomics.AtomicReference
import kotlin.concurrent.atomics.ExperimentalAtomicApi
import kotlin.coroutines.cancellation.CancellationException
import kotlin.coroutines.resume
import kotlin.time.Duration
import kotlinx.coroutines.CancellableContinuation
import kotlinx.coroutines.channels.ChannelIterator
import kotlinx.coroutines.channels.ClosedReceiveChannelException
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.suspendCancellableCoroutine

/**
 * A session's received frames between its drain and the app: at most [capacity]
 * (TetherConfig.incomingBuffer) frames, in order, that the app reads. A drain that found it
 * full waits until the app has taken half of them ([awaitRoom]), not for each frame: woken
 * for every frame taken, it would pay a wakeup and a thread hop per frame while the app
 * reads a full buffer; woken at half, it pays one per capacity / 2 frames and refills in one
 * go. What the app sees is the same: frames in order, at most [capacity] waiting, none
 * dropped.
 *
 * A queue of its own rather than a kotlinx Channel: one producer (the session's drain, one
 * at a time) and any number of readers make it a linked list whose reader takes a frame
 * with one compare-and-set and whose drain adds one with none, where the channel's send and
 * receive, each a few atomic updates, were a good part of the façade's CPU per frame, and
 * their JIT compilation a good part of the throughput benchmark's. Readers that find it
 * empty wait for a wakeup, not for a frame, so a reader cancelled while waiting loses none.
 *
 * The take that makes room does not wake the drain itself: it hands [room] to
 * [signalRoom] (a session's passes it to the poller thread, [Poller.signalOnPollerThread]),
 * so that resuming the drain, with all of the coroutine machinery that takes, is not
 * compiled into every method of the app's receive path.
 */
internal class FrameBuffer(
    private val capacity: Int,
    private val signalRoom: (Wakeup) -> Unit = { it.signal() },
) {
    /** A frame in the queue; [seq] counts the frames put before it, itself included. */
    private class Node(var frame: Frame?, val seq: Long) {
        @Volatile
        var next: Node? = null
    }

    /** The last frame taken (a node without its frame), or the start: the next is the first waiting. */
    private val head = AtomicReference(Node(null, 0))

    /** The last frame put; written by the drain only. */
    @Volatile
    private var tail: Node = head.load()

    /** Null while open; then why it ended: [CLOSED], or the cancellation that dropped the frames. */
    @Volatile
    private var ended: Throwable? = null

    /** Readers waiting for a frame (or the end). */
    private val readers = AtomicReference<List<CancellableContinuation<Unit>>>(emptyList())

    /** A drain waits in [awaitRoom]: the app's take that reaches [lowWater] signals [room]. */
    private val drainWaiting = AtomicBoolean(false)
    private val room = Wakeup()

    /** The drain goes on once this many frames (or fewer) wait. */
    private val lowWater = capacity / 2

    /**
     * Adds [frame] if there is room: true when taken, false when full; once ended, dropped
     * (true). Called by the session's drain only (one producer).
     */
    fun trySend(frame: Frame): Boolean {
        if (ended != null) return true
        val last = tail
        if (last.seq - head.load().seq >= capacity) return false
        val node = Node(frame, last.seq + 1)
        last.next = node
        tail = node
        wakeReaders()
        return true
    }

    /**
     * Suspends until the app has taken frames down to half the capacity, the buffer ended,
     * [wakeDrain] was called, or [timeout] passed (null: no timeout). It may return early:
     * the caller tries again, and waits again while it is still full.
     */
    suspend fun awaitRoom(timeout: Duration?) {
        // Register, then check, so that a take in between is not missed.
        drainWaiting.store(true)
        if (tail.seq - head.load().seq <= lowWater || ended != null) {
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

    /** The first waiting frame, taken; null when none waits. */
    private fun poll(): Frame? {
        while (true) {
            val first = head.load()
            val next = first.next ?: return null
            if (head.compareAndSet(first, next)) {
                val frame = next.frame
                next.frame = null // the node stays as the new start: let the frame go
                if (tail.seq - next.seq <= lowWater && drainWaiting.load() && drainWaiting.compareAndSet(true, false)) {
                    signalRoom(room)
                }
                return frame
            }
        }
    }

    /**
     * The first waiting frame, taken, without waiting; null when none waits. Readers try it
     * before [receiveOrNull]: a suspending call costs a continuation object per frame even
     * when it returns at once.
     */
    fun tryReceive(): Frame? = poll()

    /**
     * The next frame, waiting for one; null once the buffer ended and is empty. A buffer
     * ended by [cancel] throws the cancellation (as a cancelled channel's iterator and flow
     * do) when [rethrow], else gives null (as `receiveCatching().getOrNull()` did).
     */
    suspend fun receiveOrNull(rethrow: Boolean = true): Frame? {
        while (true) {
            poll()?.let { return it }
            val end = ended
            if (end != null) {
                // A frame put just before the end is still read.
                poll()?.let { return it }
                if (end === CLOSED || !rethrow) return null
                throw end
            }
            awaitFrame()
        }
    }

    suspend fun receive(): Frame = receiveOrNull() ?: throw ClosedReceiveChannelException("the session has ended")

    private suspend fun awaitFrame() = suspendCancellableCoroutine { reader ->
        while (true) {
            val now = readers.load()
            if (readers.compareAndSet(now, now + reader)) break
        }
        reader.invokeOnCancellation { removeReader(reader) }
        // Registered, then checked: a frame (or the end) that came in between found no reader.
        if ((head.load().next != null || ended != null) && removeReader(reader)) reader.resume(Unit)
    }

    /** False when [reader] was woken (and removed) already. */
    private fun removeReader(reader: CancellableContinuation<Unit>): Boolean {
        while (true) {
            val now = readers.load()
            if (reader !in now) return false
            if (readers.compareAndSet(now, now - reader)) return true
        }
    }

    private fun wakeReaders() {
        if (readers.load().isEmpty()) return
        // Every waiting reader tries again (usually there is one); a cancelled one is skipped.
        for (reader in readers.exchange(emptyList())) reader.resume(Unit)
    }

    val isEmpty: Boolean get() = head.load().next == null && ended == null
    val isClosedForReceive: Boolean get() = ended != null && head.load().next == null

    fun iterator(): ChannelIterator<Frame> = object : ChannelIterator<Frame> {
        private var next: Frame? = null
        override suspend fun hasNext(): Boolean {
            val ready = tryReceive() ?: return hasNextWaiting()
            next = ready
            return true
        }

        private suspend fun hasNextWaiting(): Boolean {
            next = receiveOrNull()
            return next != null
        }
        override fun next(): Frame = next?.also { next = null } ?: throw NoSuchElementException("call hasNext first")
    }

    /** The frames as a flow (several collectors share them, as with `receiveAsFlow`). */
    fun asFlow(): Flow<Frame> = flow {
        while (true) emit(tryReceive() ?: receiveOrNull() ?: break)
    }

    /** The session ended: the app reads what is left, then the end. */
    fun close() {
        end(CLOSED)
    }

    /** Nobody reads any more: what is buffered is dropped. */
    fun cancel() {
        end(CancellationException("the session was abandoned: its frames were dropped"))
        while (poll() != null) {
            // Dropped.
        }
    }

    private fun end(cause: Throwable) {
        if (ended == null) ended = cause
        wakeReaders()
        wakeDrain()
    }

    private companion object {
        /** [ended] for a plain close: readers get the frames left, then the end. */
        val CLOSED = ClosedReceiveChannelException("the session has ended")
    }
}
