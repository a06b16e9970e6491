@file:OptIn(ExperimentalForeignApi::class, ObsoleteWorkersApi::class)

package dev.tether.internal

import cnames.structs.ws_client
import dev.tether.TetherError
import dev.tether.TetherStats
import dev.tether.cinterop.WS_BINARY
import dev.tether.cinterop.WS_ERR_QUEUE_FULL
import dev.tether.cinterop.WS_OK
import dev.tether.cinterop.WS_TEXT
import dev.tether.cinterop.WS_TIMEOUT
import dev.tether.cinterop.ws_ack
import dev.tether.cinterop.ws_client_stats
import dev.tether.cinterop.ws_close
import dev.tether.cinterop.ws_connect
import dev.tether.cinterop.ws_event
import dev.tether.cinterop.ws_event_kind
import dev.tether.cinterop.ws_flush
import dev.tether.cinterop.ws_free
import dev.tether.cinterop.ws_last_error
import dev.tether.cinterop.ws_live_clients
import dev.tether.cinterop.ws_network_changed
import dev.tether.cinterop.ws_outbox_pending
import dev.tether.cinterop.ws_pause
import dev.tether.cinterop.ws_poll_event
import dev.tether.cinterop.ws_reconnect
import dev.tether.cinterop.ws_resume
import dev.tether.cinterop.ws_send
import dev.tether.cinterop.ws_send_tracked
import dev.tether.cinterop.ws_set_header
import dev.tether.cinterop.ws_stats
import kotlin.concurrent.AtomicLong
import kotlin.native.concurrent.ObsoleteWorkersApi
import kotlin.native.concurrent.Worker
import kotlin.time.Duration.Companion.microseconds
import kotlinx.cinterop.CPointer
import kotlinx.cinterop.CPointerVar
import kotlinx.cinterop.ExperimentalForeignApi
import kotlinx.cinterop.ULongVar
import kotlinx.cinterop.addressOf
import kotlinx.cinterop.alloc
import kotlinx.cinterop.convert
import kotlinx.cinterop.get
import kotlinx.cinterop.memScoped
import kotlinx.cinterop.ptr
import kotlinx.cinterop.readBytes
import kotlinx.cinterop.reinterpret
import kotlinx.cinterop.toKStringFromUtf8
import kotlinx.cinterop.usePinned
import kotlinx.cinterop.value
import kotlinx.coroutines.runBlocking

internal actual fun platformBinding(): Binding = CinteropBinding

/**
 * iOS and Linux: the Rust core through cinterop on include/tether.h (package
 * `dev.tether.cinterop`, see src/nativeInterop/cinterop/tether.def), one poller Worker per
 * session.
 */
internal object CinteropBinding : Binding {
    override fun open(url: String, optionsJson: String, sink: EventSink): NativeClient {
        val pointer = memScoped {
            val out = alloc<CPointerVar<ws_client>>()
            // The strings are copied by ws_connect: cinterop's temporary C strings suffice.
            orThrow(ws_connect(url, optionsJson, out.ptr))
            out.value ?: throw TetherError.Internal("ws_connect succeeded without a client")
        }
        val client = CinteropClient(ClientHandle(pointer, sink::released), sink)
        client.start()
        Unreachables.sweep()
        return client
    }

    override fun liveClients(): Long {
        // A leak check asks this after a GC: let forgotten sessions start closing first.
        Unreachables.sweep()
        return ws_live_clients().toLong()
    }

    override fun onUnreachable(owner: Any, action: () -> Unit) = Unreachables.register(owner, action)
}

/**
 * One native client and its poller: a dedicated [Worker] that blocks in `ws_poll_event`,
 * decodes each event from one `ws_event` it reuses (payloads are copied once, into the
 * ByteArray or String the app receives), and hands the events to the sink in order. It is
 * the only thread that polls, and it drops the handle's own reference after its last poll
 * returned, so `ws_free` runs once, after every call on the client (see [ClientHandle]).
 */
internal class CinteropClient(private val handle: ClientHandle, private val sink: EventSink) : NativeClient {
    fun start() {
        val worker = try {
            Worker.start(name = "tether-poller-${ids.incrementAndGet()}")
        } catch (e: Throwable) {
            handle.use { ws_close(it, GOING_AWAY.toUShort(), null) }
            handle.destroy()
            throw e
        }
        worker.executeAfter(0L) { pollUntilTerminated() }
    }

    private fun pollUntilTerminated() {
        try {
            runBlocking { pollAndDeliver() }
        } catch (e: Throwable) {
            // Only a bug of the sink gets here (it never throws): the session is over anyway.
        } finally {
            handle.destroy()
            // The poller's thread ends after this job; the runtime reclaims it.
            Worker.current.requestTermination(processScheduledJobs = false)
        }
    }

    private suspend fun pollAndDeliver() {
        try {
            memScoped {
                val event = alloc<ws_event>()
                var terminated = false
                while (!terminated) {
                    val status = handle.use { p -> orThrow(ws_poll_event(p, POLL_TIMEOUT_MS, event.ptr)) }
                    if (status == WS_TIMEOUT) {
                        Unreachables.sweep()
                        continue
                    }
                    val decoded = decode(event)
                    sink.deliver(decoded)
                    terminated = decoded === NativeEvent.Terminated
                }
            }
        } catch (e: Throwable) {
            // The core failed (a bug or a dead runtime thread): report it and end the session.
            val error = e as? TetherError ?: TetherError.Internal(e.toString())
            sink.deliver(NativeEvent.Error(error.code, error.message ?: "poll failed"))
            sink.deliver(NativeEvent.Terminated)
        }
    }

    override fun sendText(text: String): Boolean = send(WS_TEXT, text.encodeToByteArray())

    override fun sendBinary(data: ByteArray): Boolean = send(WS_BINARY, data)

    /** Hands [bytes] to `ws_send` in place (pinned, not copied); the core copies them once. */
    private fun send(kind: UInt, bytes: ByteArray): Boolean = handle.use { p ->
        val status = if (bytes.isEmpty()) {
            ws_send(p, kind, null, 0u)
        } else {
            bytes.usePinned { pinned -> ws_send(p, kind, pinned.addressOf(0).reinterpret(), bytes.size.convert()) }
        }
        status != WS_ERR_QUEUE_FULL && orThrow(status) == WS_OK
    }

    override fun sendTrackedText(text: String): Long? = sendTracked(WS_TEXT, text.encodeToByteArray())

    override fun sendTrackedBinary(data: ByteArray): Long? = sendTracked(WS_BINARY, data)

    /** As [send], through `ws_send_tracked`: the id, or null when the outbox is full (nothing taken). */
    private fun sendTracked(kind: UInt, bytes: ByteArray): Long? = handle.use { p ->
        memScoped {
            val id = alloc<ULongVar>()
            val status = if (bytes.isEmpty()) {
                ws_send_tracked(p, kind, null, 0u, id.ptr)
            } else {
                bytes.usePinned { pinned ->
                    ws_send_tracked(p, kind, pinned.addressOf(0).reinterpret(), bytes.size.convert(), id.ptr)
                }
            }
            if (status == WS_ERR_QUEUE_FULL) return@memScoped null
            orThrow(status)
            id.value.toLong()
        }
    }

    override fun ack(id: Long) {
        if (id < 0) throw TetherError.InvalidArgument("no message with id $id is pending in the outbox")
        handle.use { orThrow(ws_ack(it, id.toULong())) }
    }

    override fun outboxPending(): Long = memScoped {
        val count = alloc<ULongVar>()
        handle.use { orThrow(ws_outbox_pending(it, count.ptr)) }
        // Saturates as the JVM binding does (a count never gets near).
        count.value.coerceAtMost(Long.MAX_VALUE.toULong()).toLong()
    }

    override fun close(code: Int, reason: String) {
        if (code !in 0..0xFFFF) throw TetherError.InvalidArgument("close code $code is out of range")
        handle.use { orThrow(ws_close(it, code.toUShort(), reason)) }
    }

    override fun pause() {
        handle.use { orThrow(ws_pause(it)) }
    }

    override fun resume() {
        handle.use { orThrow(ws_resume(it)) }
    }

    override fun networkChanged(available: Boolean) {
        handle.use { orThrow(ws_network_changed(it, if (available) 1 else 0)) }
    }

    override fun reconnect() {
        handle.use { orThrow(ws_reconnect(it)) }
    }

    override fun flush() {
        handle.use { orThrow(ws_flush(it)) }
    }

    override fun setHeader(name: String, value: String?) {
        handle.use { orThrow(ws_set_header(it, name, value)) }
    }

    override fun stats(): TetherStats = memScoped {
        val s = alloc<ws_client_stats>()
        handle.use { orThrow(ws_stats(it, s.ptr)) }
        TetherStats(
            queuedMessages = s.queued_messages.toLong(),
            queuedBytes = s.queued_bytes.toLong(),
            reconnects = s.reconnects.toLong(),
            lastRtt = if (s.last_rtt_us > 0u) s.last_rtt_us.toLong().microseconds else null,
            bytesIn = s.bytes_in.toLong(),
            bytesOut = s.bytes_out.toLong(),
            messagesIn = s.messages_in.toLong(),
            messagesOut = s.messages_out.toLong(),
            droppedMessages = s.dropped_messages.toLong(),
            unpolledBytes = s.unpolled_bytes.toLong(),
        )
    }

    private companion object {
        val ids = AtomicLong(0)
        const val GOING_AWAY = 1001

        /**
         * A bound on one blocking poll: `ws_close` wakes the poller long before. On a
         * timeout the poller looks for sessions the app forgot ([Unreachables]).
         */
        const val POLL_TIMEOUT_MS = 5_000
    }
}

/** Copies the event out of the core's memory (`data` lives until the next poll). */
private fun decode(e: ws_event): NativeEvent = when (e.kind) {
    ws_event_kind.WS_EVENT_STATE -> NativeEvent.State(e.state.value.toInt())
    ws_event_kind.WS_EVENT_OPEN -> NativeEvent.Open(if (e.len == 0uL) null else e.text())
    ws_event_kind.WS_EVENT_TEXT -> NativeEvent.Text(e.text())
    ws_event_kind.WS_EVENT_BINARY -> NativeEvent.Binary(e.bytes())
    ws_event_kind.WS_EVENT_CLOSED -> NativeEvent.Closed(e.close_code.toInt(), e.text())
    ws_event_kind.WS_EVENT_RECONNECTING -> NativeEvent.Reconnecting(e.attempt.toInt(), e.delay_ms.toLong())
    ws_event_kind.WS_EVENT_ERROR -> NativeEvent.Error(e.error, e.text())
    ws_event_kind.WS_EVENT_TERMINATED -> NativeEvent.Terminated
    ws_event_kind.WS_EVENT_RESENT -> NativeEvent.Resent(e.ids())
}

private val EMPTY = ByteArray(0)

private fun ws_event.bytes(): ByteArray {
    val data = data
    return if (data == null || len == 0uL) EMPTY else data.readBytes(len.toInt())
}

private fun ws_event.text(): String = bytes().decodeToString()

/** The ids of a RESENT event: `.data` points to `.len / 8` aligned `uint64_t`s, oldest first. */
private fun ws_event.ids(): LongArray {
    val data = data
    val count = (len / 8uL).toInt()
    if (data == null || count == 0) return LongArray(0)
    val values = data.reinterpret<ULongVar>()
    return LongArray(count) { values[it].toLong() }
}

/**
 * A `ws_client` pointer that is never freed under a running call, and freed exactly once.
 *
 * [calls] starts at 1 (the handle's own reference, which the poller gives up after its last
 * poll). Every call increments it for its duration; whoever brings it to 0 calls `ws_free`,
 * so a call in flight (a send from another thread) delays the free until it returns, and
 * no call can start after it (uniffi's scheme, as on the JVM). [onFreed] runs right after
 * `ws_free`, on the thread that called it.
 */
internal class ClientHandle(
    @PublishedApi internal val pointer: CPointer<ws_client>,
    private val onFreed: () -> Unit = {},
) {
    private val calls = AtomicLong(1)
    private val destroyed = AtomicLong(0)

    /** Runs [block] with the pointer; throws [TetherError.Closed] once the handle is released. */
    inline fun <R> use(block: (CPointer<ws_client>) -> R): R {
        acquire()
        try {
            return block(pointer)
        } finally {
            release()
        }
    }

    /** Gives the handle's own reference up; the pointer is freed when no call is in flight. */
    fun destroy() {
        if (destroyed.compareAndSet(0, 1)) release()
    }

    @PublishedApi
    internal fun acquire() {
        // Retries only when another thread changed the count in between.
        while (true) {
            val c = calls.value
            if (c == 0L) throw TetherError.Closed("the session has ended and its native client was released")
            if (calls.compareAndSet(c, c + 1)) return
        }
    }

    @PublishedApi
    internal fun release() {
        if (calls.decrementAndGet() == 0L) {
            ws_free(pointer)
            onFreed()
        }
    }
}

/** Returns [status] when it is not a failure; else throws the matching [TetherError] with `ws_last_error`. */
internal fun orThrow(status: Int): Int {
    if (status >= 0) return status
    // Read on the failing thread, before any other call can replace it.
    val message = ws_last_error()?.toKStringFromUtf8()
    throw TetherError.of(status, message ?: "Tether call failed with status $status")
}
