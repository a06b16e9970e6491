package dev.tether.internal

import dev.tether.TetherStats
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.concurrent.atomic.AtomicReferenceArray
import kotlin.time.Duration.Companion.microseconds

internal actual fun platformBinding(): Binding = JniBinding

/** The JVM/Android binding: the Rust core through JNI (`src/jni/`). Only crossing the boundary. */
internal object JniBinding : Binding {
    override fun connect(url: String, optionsJson: String): RawClient {
        NativeLibrary.check()
        return JniClient(translate { NativeBridge.connect(url, optionsJson) })
    }

    override fun connectSocketIo(url: String, optionsJson: String): RawSocketIo {
        NativeLibrary.check()
        return JniSocketIo(translate { SioBridge.connect(url, optionsJson) })
    }

    override fun connectSse(url: String, optionsJson: String): RawSse {
        NativeLibrary.check()
        return JniSse(translate { SseBridge.connect(url, optionsJson) })
    }

    override fun newPollSet(): RawPollSet {
        NativeLibrary.check()
        return JniPollSet(translate { NativeBridge.pollSetNew() })
    }

    override fun startThread(name: String, body: () -> Unit) {
        val thread = Thread(null, body, name, STACK_BYTES)
        thread.isDaemon = true
        thread.start()
    }

    override fun liveClients(): Long {
        NativeLibrary.check()
        return NativeBridge.liveCount()
    }

    override fun onUnreachable(owner: Any, action: () -> Unit) = Reaper.register(owner, action)

    /** The Cleaner finds forgotten sessions by itself: the poller never needs to wake for it. */
    override val idleTimeoutMs: Int = -1

    override fun idle() {}

    /** The poller decodes and hands over: it needs little stack. */
    private const val STACK_BYTES = 256L * 1024
}

/** One native client through [NativeBridge]; its pointer is valid until [free]. */
internal class JniClient(private val pointer: Long) : RawClient {
    /** The pointer, for the poll set. */
    val handle: Long get() = pointer

    override fun drain(into: MutableList<NativeEvent>, max: Int) {
        // Decoders are pooled, not one per session (a thousand sessions) nor one per thread
        // (a drain also runs on the app thread whose take resumed it): as many exist as
        // drains run at once, and each reuses its grown buffer.
        val decoder = DecoderPool.take()
        try {
            val length = translate { NativeBridge.pollBatch(pointer, 0, decoder.buffer) }
            decoder.decode(length, { translate { NativeBridge.takePending(pointer) } }) { into.add(it) }
        } finally {
            DecoderPool.give(decoder)
        }
    }

    override fun free() = NativeBridge.free(pointer)

    override fun sendText(text: String): Boolean {
        val utf8 = text.encodeToByteArray()
        val status = if (utf8.size <= SendBuffer.CAPACITY) {
            val s = SendBuffer.mine().holding(utf8)
            translate { NativeBridge.sendDirect(pointer, s.buffer, s.address, utf8.size, true) }
        } else {
            translate { NativeBridge.sendText(pointer, utf8, 0, utf8.size) }
        }
        return status == SENT
    }

    override fun sendBinary(data: ByteArray): Boolean {
        val status = if (data.size <= SendBuffer.CAPACITY) {
            val s = SendBuffer.mine().holding(data)
            translate { NativeBridge.sendDirect(pointer, s.buffer, s.address, data.size, false) }
        } else {
            translate { NativeBridge.sendBinary(pointer, data, 0, data.size) }
        }
        return status == SENT
    }

    override fun sendTrackedText(text: String): Long? {
        val utf8 = text.encodeToByteArray()
        return tracked(translate { NativeBridge.sendTrackedText(pointer, utf8, 0, utf8.size) })
    }

    override fun sendTrackedBinary(data: ByteArray): Long? =
        tracked(translate { NativeBridge.sendTrackedBinary(pointer, data, 0, data.size) })

    /** An id (≥ 1), or null for QUEUE_FULL: the outbox was full. */
    private fun tracked(result: Long): Long? = if (result == FULL) null else result

    override fun ack(id: Long) = translate { NativeBridge.ack(pointer, id) }
    override fun outboxPending(): Long = translate { NativeBridge.outboxPending(pointer) }
    override fun close(code: Int, reason: String) = translate { NativeBridge.close(pointer, code, reason) }
    override fun pause() = translate { NativeBridge.pause(pointer) }
    override fun resume() = translate { NativeBridge.resume(pointer) }
    override fun networkChanged(available: Boolean) = translate { NativeBridge.networkChanged(pointer, available) }
    override fun reconnect() = translate { NativeBridge.reconnect(pointer) }
    override fun flush() = translate { NativeBridge.flush(pointer) }
    override fun setHeader(name: String, value: String?) = translate { NativeBridge.setHeader(pointer, name, value) }

    override fun stats(): TetherStats {
        val s = LongArray(STATS)
        translate { NativeBridge.stats(pointer, s) }
        return TetherStats(
            queuedMessages = s[0], queuedBytes = s[1], reconnects = s[2],
            lastRtt = if (s[3] > 0) s[3].microseconds else null,
            bytesIn = s[4], bytesOut = s[5], messagesIn = s[6], messagesOut = s[7],
            droppedMessages = s[8], unpolledBytes = s[9],
        )
    }

    private companion object {
        const val SENT = Codes.WS_OK
        const val FULL = Codes.WS_ERR_QUEUE_FULL.toLong()
        const val STATS = 10
    }
}

/**
 * A sending thread's direct buffer: a small message is copied into it and crosses JNI by
 * address (`NativeBridge.sendDirect`), so the core reads it with no JNI callback, where a
 * Java array costs three (its length, the critical section's start and end) per send. One
 * per thread that sends, [CAPACITY] bytes each; larger messages cross as arrays.
 */
internal class SendBuffer private constructor() {
    val buffer: ByteBuffer = ByteBuffer.allocateDirect(CAPACITY)
    val address: Long = translate { NativeBridge.directAddress(buffer) }

    /** Copies [bytes] (at most [CAPACITY]) to the start of [buffer]. */
    fun holding(bytes: ByteArray): SendBuffer {
        buffer.clear()
        buffer.put(bytes)
        return this
    }

    companion object {
        const val CAPACITY = 4 * 1024

        // Not ThreadLocal.withInitial: Android has it from API 26 only.
        private val perThread = object : ThreadLocal<SendBuffer>() {
            override fun initialValue() = SendBuffer()
        }

        fun mine(): SendBuffer = perThread.get()
    }
}

/** The process's poll set through [NativeBridge]. */
internal class JniPollSet(private val pointer: Long) : RawPollSet {
    override fun add(client: RawClient, token: Long) = translate {
        when (client) {
            is JniSocketIo -> SioBridge.pollSetAdd(pointer, client.handle, token)
            is JniSse -> SseBridge.pollSetAdd(pointer, client.handle, token)
            else -> NativeBridge.pollSetAdd(pointer, (client as JniClient).handle, token)
        }
    }

    override fun rearm(client: RawClient) = translate {
        when (client) {
            is JniSocketIo -> SioBridge.pollSetRearm(pointer, client.handle)
            is JniSse -> SseBridge.pollSetRearm(pointer, client.handle)
            else -> NativeBridge.pollSetRearm(pointer, (client as JniClient).handle)
        }
    }

    override fun remove(client: RawClient) = translate {
        when (client) {
            is JniSocketIo -> SioBridge.pollSetRemove(pointer, client.handle)
            is JniSse -> SseBridge.pollSetRemove(pointer, client.handle)
            else -> NativeBridge.pollSetRemove(pointer, (client as JniClient).handle)
        }
    }

    /** Only WebSocket sessions wait for room in their queue (Socket.IO and SSE emit or read only). */
    override fun watchRoom(client: RawClient) = translate {
        NativeBridge.pollSetWatchRoom(pointer, (client as JniClient).handle)
    }

    override fun wait(timeoutMs: Int, tokens: LongArray): Int = translate { NativeBridge.pollSetWait(pointer, timeoutMs, tokens) }
    override fun wake() = translate { NativeBridge.pollSetWake(pointer) }
}

/**
 * The [EventDecoder]s of the drains running now: a drain takes one and gives it back, so the
 * process keeps at most [SLOTS] of them (drains rarely overlap: one poller thread, plus the
 * app threads that resume a drain whose session's buffer was full).
 */
internal object DecoderPool {
    private const val SLOTS = 4
    private val slots = AtomicReferenceArray<EventDecoder?>(SLOTS)

    fun take(): EventDecoder {
        for (i in 0 until SLOTS) slots.getAndSet(i, null)?.let { return it }
        return EventDecoder()
    }

    /** Keeps [decoder] for the next drain, or drops it when every slot is taken. */
    fun give(decoder: EventDecoder) {
        for (i in 0 until SLOTS) if (slots.compareAndSet(i, null, decoder)) return
    }
}

/**
 * Decodes the batches of `src/jni/wire.rs` from a direct buffer that starts small and
 * doubles, up to [MAX_BUFFER], while batches fill it. The fields of each record go to the
 * common [NativeEvent.decode].
 */
internal class EventDecoder {
    var buffer: ByteBuffer = allocate(INITIAL_BUFFER)
        private set

    /** A text message's bytes on their way from [buffer] to its String: no array per message. */
    private var scratch = ByteArray(INITIAL_BUFFER)

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
            if (rawKind == Codes.WS_EVENT_TEXT) {
                // The common case, decoded without the payload array of the general path.
                if (scratch.size < len) scratch = ByteArray(b.capacity())
                b.position(at + HEADER)
                b.get(scratch, 0, len)
                at += HEADER + len
                deliver(NativeEvent.Text(String(scratch, 0, len, Charsets.UTF_8)))
                continue
            }
            val payload: ByteArray? = when {
                pending -> takePending()
                len == 0 -> null
                else -> ByteArray(len).also { b.position(at + HEADER); b.get(it) }
            }
            val kind = rawKind and PENDING.inv()
            // Text and binary messages may be empty: give them an empty payload, not none.
            val event = NativeEvent.decode(
                kind = kind,
                state = b.get(at + 1).toInt(),
                closeCode = b.getShort(at + 2).toInt() and 0xFFFF,
                code = b.getInt(at + 4),
                delayMs = b.getLong(at + 8),
                payload = payload,
            )
            at += HEADER + if (pending) 0 else len
            deliver(event)
            if (event === NativeEvent.Terminated) terminated = true
        }
        if (length > b.capacity() / 2 && b.capacity() < MAX_BUFFER) buffer = allocate(b.capacity() * 2)
        return terminated
    }

    companion object {
        /** Bytes of a record before its payload (src/jni/wire.rs `HEADER`). */
        const val HEADER = 20

        /** Set in the kind byte (a [Codes] `WS_EVENT_…` value) when the payload waits in [NativeBridge.takePending]. */
        const val PENDING = 0x80
        const val INITIAL_BUFFER = 4 * 1024
        const val MAX_BUFFER = 256 * 1024

        fun allocate(size: Int): ByteBuffer = ByteBuffer.allocateDirect(size).order(ByteOrder.LITTLE_ENDIAN)
    }
}

/** Runs [block], turning a [NativeException] into the matching [dev.tether.TetherError]. */
internal inline fun <R> translate(block: () -> R): R = try {
    block()
} catch (e: NativeException) {
    throw dev.tether.TetherError.of(e.status, e.message ?: "native call failed")
}
