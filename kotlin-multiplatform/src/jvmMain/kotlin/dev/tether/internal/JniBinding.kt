package dev.tether.internal

import dev.tether.TetherStats
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.concurrent.atomic.AtomicLong
import kotlin.time.Duration.Companion.microseconds
import kotlinx.coroutines.runBlocking

internal actual fun platformBinding(): Binding = JniBinding

/** The JVM/Android binding: the Rust core through JNI, one poller thread per session. */
internal object JniBinding : Binding {

    override fun open(url: String, optionsJson: String, sink: EventSink): NativeClient {
        val pointer = translate { NativeBridge.connect(url, optionsJson) }
        val client = JniClient(NativeHandle(pointer, sink::released), sink)
        client.start()
        return client
    }

    override fun liveClients(): Long = NativeBridge.liveCount()

    override fun onUnreachable(owner: Any, action: () -> Unit) = Reaper.register(owner, action)
}

/**
 * One native client and its poller: a dedicated daemon thread that blocks in
 * [NativeBridge.pollBatch], decodes each batch from a direct buffer it reuses, and hands
 * the events to the sink in order. It is the only thread that polls, and the one that
 * releases the handle after the last event.
 */
internal class JniClient(private val handle: NativeHandle, private val sink: EventSink) : NativeClient {
    fun start() {
        val thread = Thread(null, ::pollUntilTerminated, "tether-poller-${ids.incrementAndGet()}", STACK_BYTES)
        thread.isDaemon = true
        try {
            thread.start()
        } catch (e: Throwable) {
            handle.use { NativeBridge.close(it, GOING_AWAY, null) }
            handle.destroy()
            throw e
        }
    }

    private fun pollUntilTerminated() = runBlocking {
        val decoder = EventDecoder()
        try {
            var done = false
            while (!done) {
                val n = handle.use { NativeBridge.pollBatch(it, POLL_TIMEOUT_MS, decoder.buffer) }
                done = decoder.decode(n, { handle.use { p -> NativeBridge.takePending(p) } }) { sink.deliver(it) }
            }
        } catch (e: Throwable) {
            // The core failed (a bug or a dead runtime thread): report it and end the session.
            val error = e as? dev.tether.TetherError ?: dev.tether.TetherError.Internal(e.toString())
            sink.deliver(NativeEvent.Error(error.code, error.message ?: "poll failed"))
            sink.deliver(NativeEvent.Terminated)
        } finally {
            handle.destroy()
        }
    }

    override fun sendText(text: String): Boolean {
        val utf8 = text.encodeToByteArray()
        return handle.use { NativeBridge.sendText(it, utf8, 0, utf8.size) } == SENT
    }

    override fun sendBinary(data: ByteArray): Boolean =
        handle.use { NativeBridge.sendBinary(it, data, 0, data.size) } == SENT

    override fun sendTrackedText(text: String): Long? {
        val utf8 = text.encodeToByteArray()
        return tracked(handle.use { NativeBridge.sendTrackedText(it, utf8, 0, utf8.size) })
    }

    override fun sendTrackedBinary(data: ByteArray): Long? =
        tracked(handle.use { NativeBridge.sendTrackedBinary(it, data, 0, data.size) })

    /** An id (≥ 1), or null for QUEUE_FULL: the outbox was full. */
    private fun tracked(result: Long): Long? = if (result == FULL) null else result

    override fun ack(id: Long) = handle.use { NativeBridge.ack(it, id) }
    override fun outboxPending(): Long = handle.use { NativeBridge.outboxPending(it) }

    override fun close(code: Int, reason: String) = handle.use { NativeBridge.close(it, code, reason) }
    override fun pause() = handle.use { NativeBridge.pause(it) }
    override fun resume() = handle.use { NativeBridge.resume(it) }
    override fun networkChanged(available: Boolean) = handle.use { NativeBridge.networkChanged(it, available) }
    override fun reconnect() = handle.use { NativeBridge.reconnect(it) }
    override fun flush() = handle.use { NativeBridge.flush(it) }
    override fun setHeader(name: String, value: String?) = handle.use { NativeBridge.setHeader(it, name, value) }

    override fun stats(): TetherStats {
        val s = LongArray(STATS)
        handle.use { NativeBridge.stats(it, s) }
        return TetherStats(
            queuedMessages = s[0], queuedBytes = s[1], reconnects = s[2],
            lastRtt = if (s[3] > 0) s[3].microseconds else null,
            bytesIn = s[4], bytesOut = s[5], messagesIn = s[6], messagesOut = s[7],
            droppedMessages = s[8], unpolledBytes = s[9],
        )
    }

    private companion object {
        val ids = AtomicLong()
        const val SENT = Codes.WS_OK
        const val FULL = Codes.WS_ERR_QUEUE_FULL.toLong()
        const val GOING_AWAY = 1001
        const val STATS = 10

        /** A bound on one blocking poll; close wakes the poller long before. */
        const val POLL_TIMEOUT_MS = 30_000

        /** The poller needs little stack: decode and hand over. */
        const val STACK_BYTES = 256L * 1024
    }
}

/**
 * Decodes the batches of `src/jni/wire.rs` from a direct buffer that starts small (idle
 * sessions stay cheap) and doubles, up to [MAX_BUFFER], while batches fill it.
 */
internal class EventDecoder {
    var buffer: ByteBuffer = allocate(INITIAL_BUFFER)
        private set

    /**
     * Decodes the [length] bytes of the last batch and hands each event to [deliver];
     * [takePending] fetches a payload too big for the buffer. Returns true after TERMINATED.
     */
    inline fun decode(length: Int, takePending: () -> ByteArray, deliver: (NativeEvent) -> Unit): Boolean {
        val b = buffer
        var at = 0
        var terminated = false
        while (at < length) {
            val rawKind = b.get(at).toInt() and 0xFF
            val pending = rawKind and PENDING != 0
            val len = b.getInt(at + 16)
            val payload: ByteArray? = when {
                pending -> takePending()
                len == 0 -> null
                else -> ByteArray(len).also { b.position(at + HEADER); b.get(it) }
            }
            val event = when (val kind = rawKind and PENDING.inv()) {
                Codes.WS_EVENT_STATE -> NativeEvent.State(b.get(at + 1).toInt())
                Codes.WS_EVENT_OPEN -> NativeEvent.Open(payload?.decodeToString())
                Codes.WS_EVENT_TEXT -> NativeEvent.Text(payload?.decodeToString() ?: "")
                Codes.WS_EVENT_BINARY -> NativeEvent.Binary(payload ?: EMPTY)
                Codes.WS_EVENT_CLOSED ->
                    NativeEvent.Closed(b.getShort(at + 2).toInt() and 0xFFFF, payload?.decodeToString() ?: "")
                Codes.WS_EVENT_RECONNECTING -> NativeEvent.Reconnecting(b.getInt(at + 4), b.getLong(at + 8))
                Codes.WS_EVENT_ERROR -> NativeEvent.Error(b.getInt(at + 4), payload?.decodeToString() ?: "")
                Codes.WS_EVENT_TERMINATED -> NativeEvent.Terminated
                Codes.WS_EVENT_RESENT -> NativeEvent.Resent(ids(payload))
                // The poller reports it as an internal error and ends the session.
                else -> throw IllegalStateException("event kind $kind is unknown to this binding")
            }
            at += HEADER + if (pending) 0 else len
            deliver(event)
            if (event === NativeEvent.Terminated) terminated = true
        }
        if (length > b.capacity() / 2 && b.capacity() < MAX_BUFFER) buffer = allocate(b.capacity() * 2)
        return terminated
    }

    companion object {
        /** The ids of a RESENT record: its payload is little-endian u64s, oldest first. */
        fun ids(payload: ByteArray?): LongArray {
            if (payload == null) return LongArray(0)
            val longs = ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN).asLongBuffer()
            return LongArray(longs.remaining()).also { longs.get(it) }
        }

        /** Bytes of a record before its payload (src/jni/wire.rs `HEADER`). */
        const val HEADER = 20

        /** Set in the kind byte (a [Codes] `WS_EVENT_…` value) when the payload waits in [NativeBridge.takePending]. */
        const val PENDING = 0x80
        const val INITIAL_BUFFER = 4 * 1024
        const val MAX_BUFFER = 256 * 1024
        val EMPTY = ByteArray(0)

        fun allocate(size: Int): ByteBuffer = ByteBuffer.allocateDirect(size).order(ByteOrder.LITTLE_ENDIAN)
    }
}
