package dev.tether.internal

import java.nio.ByteBuffer

/**
 * The JNI exports of the Rust crate (`src/jni/`, cargo feature `jni`). Raw: handles are
 * pointers, so every call on one goes through [NativeHandle.use]. Failures are thrown as
 * [NativeException] with the `ws_status` numbering.
 *
 * [NativeLibrary] loads the library: call [NativeLibrary.check] before the first call here,
 * so that a missing library is a [dev.tether.TetherError], not an UnsatisfiedLinkError.
 */
internal object NativeBridge {
    /** Opens a client; returns its handle. */
    @JvmStatic external fun connect(url: String, optionsJson: String?): Long

    /** Frees a handle: once, with no other call on it in flight. */
    @JvmStatic external fun free(handle: Long)

    /** Fills the direct [buffer] with a batch of events (see src/jni/wire.rs); returns the bytes written. */
    @JvmStatic external fun pollBatch(handle: Long, timeoutMs: Int, buffer: ByteBuffer): Int

    /** The payload of the event a batch flagged pending (too big for the buffer). */
    @JvmStatic external fun takePending(handle: Long): ByteArray

    /** One event: [fields] gets kind (-1: none), state, close code, code/attempt, delay ms. */
    @JvmStatic external fun pollOne(handle: Long, timeoutMs: Int, fields: LongArray): ByteArray?

    /** Queues UTF-8 text; 0, or -3 when the queue is full. */
    @JvmStatic external fun sendText(handle: Long, utf8: ByteArray, offset: Int, length: Int): Int

    /** Queues bytes; 0, or -3 when the queue is full. */
    @JvmStatic external fun sendBinary(handle: Long, data: ByteArray, offset: Int, length: Int): Int

    /** The address of a direct [buffer]'s memory (for the `send…Direct` calls). */
    @JvmStatic external fun directAddress(buffer: ByteBuffer): Long

    /**
     * Queues the [length] bytes at the start of the direct [buffer], whose [address]
     * [directAddress] gave (a small message: no JNI callback reads it), as a text ([text],
     * UTF-8) or a binary message; 0, or -3 when full.
     */
    @JvmStatic external fun sendDirect(handle: Long, buffer: ByteBuffer, address: Long, length: Int, text: Boolean): Int

    /** Stores UTF-8 text as a tracked outbox message; its id (≥ 1), or -3 when the outbox is full. */
    @JvmStatic external fun sendTrackedText(handle: Long, utf8: ByteArray, offset: Int, length: Int): Long

    /** Stores bytes as a tracked outbox message; its id (≥ 1), or -3 when the outbox is full. */
    @JvmStatic external fun sendTrackedBinary(handle: Long, data: ByteArray, offset: Int, length: Int): Long

    /** The server confirmed tracked message [id]; throws INVALID_ARGUMENT when it is not pending. */
    @JvmStatic external fun ack(handle: Long, id: Long)

    /** Messages in the outbox (not yet proven read, or tracked and not acked). */
    @JvmStatic external fun outboxPending(handle: Long): Long

    @JvmStatic external fun close(handle: Long, code: Int, reason: String?)
    @JvmStatic external fun pause(handle: Long)
    @JvmStatic external fun resume(handle: Long)
    @JvmStatic external fun networkChanged(handle: Long, available: Boolean)
    @JvmStatic external fun reconnect(handle: Long)
    @JvmStatic external fun flush(handle: Long)
    @JvmStatic external fun setHeader(handle: Long, name: String, value: String?)

    /** Fills [out] (10 longs, see src/jni/mod.rs). */
    @JvmStatic external fun stats(handle: Long, out: LongArray)

    /** Native clients alive in the process. */
    @JvmStatic external fun liveCount(): Long

    @JvmStatic external fun version(): String

    // The poll set of the process's poller (src/jni/poll_set.rs).
    @JvmStatic external fun pollSetNew(): Long
    @JvmStatic external fun pollSetFree(set: Long)
    @JvmStatic external fun pollSetAdd(set: Long, handle: Long, token: Long)
    @JvmStatic external fun pollSetRearm(set: Long, handle: Long)
    @JvmStatic external fun pollSetRemove(set: Long, handle: Long)
    @JvmStatic external fun pollSetWatchRoom(set: Long, handle: Long)

    /** Fills [tokens] with the ready clients' tokens; returns how many (0: timeout or woken). */
    @JvmStatic external fun pollSetWait(set: Long, timeoutMs: Int, tokens: LongArray): Int
    @JvmStatic external fun pollSetWake(set: Long)
}

/** Thrown by [NativeBridge]: [status] is a `ws_status` (negative). */
internal class NativeException(val status: Int, message: String) : RuntimeException(message)
