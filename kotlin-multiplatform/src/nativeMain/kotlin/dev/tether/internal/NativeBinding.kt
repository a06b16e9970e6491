@file:OptIn(ExperimentalForeignApi::class, ObsoleteWorkersApi::class)

package dev.tether.internal

import cnames.structs.ws_client
import cnames.structs.ws_poll_set
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
import dev.tether.cinterop.ws_flush
import dev.tether.cinterop.ws_free
import dev.tether.cinterop.ws_last_error
import dev.tether.cinterop.ws_live_clients
import dev.tether.cinterop.ws_network_changed
import dev.tether.cinterop.ws_outbox_pending
import dev.tether.cinterop.ws_pause
import dev.tether.cinterop.ws_poll_event
import dev.tether.cinterop.ws_poll_set_add
import dev.tether.cinterop.ws_poll_set_add_sio
import dev.tether.cinterop.ws_poll_set_add_sse
import dev.tether.cinterop.ws_poll_set_rearm_sio
import dev.tether.cinterop.ws_poll_set_rearm_sse
import dev.tether.cinterop.ws_poll_set_remove_sio
import dev.tether.cinterop.ws_poll_set_remove_sse
import dev.tether.cinterop.ws_poll_set_new
import dev.tether.cinterop.ws_poll_set_rearm
import dev.tether.cinterop.ws_poll_set_remove
import dev.tether.cinterop.ws_poll_set_wait
import dev.tether.cinterop.ws_poll_set_wake
import dev.tether.cinterop.ws_poll_set_watch_room
import dev.tether.cinterop.ws_reconnect
import dev.tether.cinterop.ws_resume
import dev.tether.cinterop.ws_send
import dev.tether.cinterop.ws_send_tracked
import dev.tether.cinterop.ws_set_header
import dev.tether.cinterop.ws_stats
import kotlin.native.concurrent.ObsoleteWorkersApi
import kotlin.native.concurrent.Worker
import kotlin.time.Duration.Companion.microseconds
import kotlinx.cinterop.CPointer
import kotlinx.cinterop.CPointerVar
import kotlinx.cinterop.ExperimentalForeignApi
import kotlinx.cinterop.ULongVar
import kotlinx.cinterop.addressOf
import kotlinx.cinterop.alloc
import kotlinx.cinterop.allocArray
import kotlinx.cinterop.convert
import kotlinx.cinterop.get
import kotlinx.cinterop.memScoped
import kotlinx.cinterop.ptr
import kotlinx.cinterop.readBytes
import kotlinx.cinterop.reinterpret
import kotlinx.cinterop.toKStringFromUtf8
import kotlinx.cinterop.usePinned
import kotlinx.cinterop.value

internal actual fun platformBinding(): Binding = CinteropBinding

/**
 * iOS and Linux: the Rust core through cinterop on include/tether.h (package
 * `dev.tether.cinterop`, see src/nativeInterop/cinterop/tether.def). Only crossing the
 * boundary: the poller, the handle counter and event decoding are commonMain's.
 */
internal object CinteropBinding : Binding {
    override fun connect(url: String, optionsJson: String): RawClient {
        val pointer = memScoped {
            val out = alloc<CPointerVar<ws_client>>()
            // The strings are copied by ws_connect: cinterop's temporary C strings suffice.
            orThrow(ws_connect(url, optionsJson, out.ptr))
            out.value ?: throw TetherError.Internal("ws_connect succeeded without a client")
        }
        Unreachables.sweep()
        return CinteropClient(pointer)
    }

    override fun connectSocketIo(url: String, optionsJson: String): RawSocketIo =
        dev.tether.internal.connectSocketIo(url, optionsJson)

    override fun connectSse(url: String, optionsJson: String): RawSse =
        dev.tether.internal.connectSse(url, optionsJson)

    override fun newPollSet(): RawPollSet {
        val pointer = memScoped {
            val out = alloc<CPointerVar<ws_poll_set>>()
            orThrow(ws_poll_set_new(out.ptr))
            out.value ?: throw TetherError.Internal("ws_poll_set_new succeeded without a set")
        }
        return CinteropPollSet(pointer)
    }

    override fun startThread(name: String, body: () -> Unit) {
        val worker = Worker.start(name = name)
        worker.executeAfter(0L) {
            try {
                body()
            } finally {
                // The thread ends after this job; the runtime reclaims it.
                Worker.current.requestTermination(processScheduledJobs = false)
            }
        }
    }

    override fun liveClients(): Long {
        // A leak check asks this after a GC: let forgotten sessions start closing first.
        Unreachables.sweep()
        return ws_live_clients().toLong()
    }

    override fun onUnreachable(owner: Any, action: () -> Unit) = Unreachables.register(owner, action)

    /**
     * Kotlin/Native has no Cleaner for objects it does not own: the poller looks for
     * sessions the app forgot ([Unreachables]) when nothing happened for this long.
     */
    override val idleTimeoutMs: Int = 5_000

    override fun idle() = Unreachables.sweep()
}

/**
 * One native client: each drain decodes events from one `ws_event` (payloads are copied
 * once, into the ByteArray or String the app receives).
 */
internal class CinteropClient(val pointer: CPointer<ws_client>) : RawClient {
    override fun drain(into: MutableList<NativeEvent>, max: Int) = memScoped {
        val event = alloc<ws_event>()
        for (n in 0 until max) {
            if (orThrow(ws_poll_event(pointer, 0, event.ptr)) == WS_TIMEOUT) break
            val decoded = decode(event)
            into.add(decoded)
            // The last event: another poll would fail with WS_ERR_CLOSED.
            if (decoded === NativeEvent.Terminated) break
        }
    }

    override fun free() = ws_free(pointer)

    override fun sendText(text: String): Boolean = send(WS_TEXT, text.encodeToByteArray())

    override fun sendBinary(data: ByteArray): Boolean = send(WS_BINARY, data)

    /** Hands [bytes] to `ws_send` in place (pinned, not copied); the core copies them once. */
    private fun send(kind: UInt, bytes: ByteArray): Boolean {
        val p = pointer
        val status = if (bytes.isEmpty()) {
            ws_send(p, kind, null, 0u)
        } else {
            bytes.usePinned { pinned -> ws_send(p, kind, pinned.addressOf(0).reinterpret(), bytes.size.convert()) }
        }
        return status != WS_ERR_QUEUE_FULL && orThrow(status) == WS_OK
    }

    override fun sendTrackedText(text: String): Long? = sendTracked(WS_TEXT, text.encodeToByteArray())

    override fun sendTrackedBinary(data: ByteArray): Long? = sendTracked(WS_BINARY, data)

    /** As [send], through `ws_send_tracked`: the id, or null when the outbox is full (nothing taken). */
    private fun sendTracked(kind: UInt, bytes: ByteArray): Long? {
        val p = pointer
        return memScoped {
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
        (pointer).let { orThrow(ws_ack(it, id.toULong())) }
    }

    override fun outboxPending(): Long = memScoped {
        val count = alloc<ULongVar>()
        (pointer).let { orThrow(ws_outbox_pending(it, count.ptr)) }
        // Saturates as the JVM binding does (a count never gets near).
        count.value.coerceAtMost(Long.MAX_VALUE.toULong()).toLong()
    }

    override fun close(code: Int, reason: String) {
        if (code !in 0..0xFFFF) throw TetherError.InvalidArgument("close code $code is out of range")
        (pointer).let { orThrow(ws_close(it, code.toUShort(), reason)) }
    }

    override fun pause() {
        (pointer).let { orThrow(ws_pause(it)) }
    }

    override fun resume() {
        (pointer).let { orThrow(ws_resume(it)) }
    }

    override fun networkChanged(available: Boolean) {
        (pointer).let { orThrow(ws_network_changed(it, if (available) 1 else 0)) }
    }

    override fun reconnect() {
        (pointer).let { orThrow(ws_reconnect(it)) }
    }

    override fun flush() {
        (pointer).let { orThrow(ws_flush(it)) }
    }

    override fun setHeader(name: String, value: String?) {
        (pointer).let { orThrow(ws_set_header(it, name, value)) }
    }

    override fun stats(): TetherStats = memScoped {
        val s = alloc<ws_client_stats>()
        (pointer).let { orThrow(ws_stats(it, s.ptr)) }
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

}

/** The process's poll set through `ws_poll_set_*`. */
internal class CinteropPollSet(private val pointer: CPointer<ws_poll_set>) : RawPollSet {
    private fun RawClient.pointer(): CPointer<ws_client> = (this as CinteropClient).pointer

    override fun add(client: RawClient, token: Long) {
        orThrow(
            when (client) {
                is CinteropSocketIo -> ws_poll_set_add_sio(pointer, client.pointer, token.toULong())
                is CinteropSse -> ws_poll_set_add_sse(pointer, client.pointer, token.toULong())
                else -> ws_poll_set_add(pointer, client.pointer(), token.toULong())
            },
        )
    }

    override fun rearm(client: RawClient) {
        orThrow(
            when (client) {
                is CinteropSocketIo -> ws_poll_set_rearm_sio(pointer, client.pointer)
                is CinteropSse -> ws_poll_set_rearm_sse(pointer, client.pointer)
                else -> ws_poll_set_rearm(pointer, client.pointer())
            },
        )
    }

    override fun remove(client: RawClient) {
        orThrow(
            when (client) {
                is CinteropSocketIo -> ws_poll_set_remove_sio(pointer, client.pointer)
                is CinteropSse -> ws_poll_set_remove_sse(pointer, client.pointer)
                else -> ws_poll_set_remove(pointer, client.pointer())
            },
        )
    }

    override fun watchRoom(client: RawClient) {
        orThrow(ws_poll_set_watch_room(pointer, client.pointer()))
    }

    override fun wait(timeoutMs: Int, tokens: LongArray): Int = memScoped {
        val count = alloc<ULongVar>()
        val ready = allocArray<ULongVar>(tokens.size)
        if (orThrow(ws_poll_set_wait(pointer, timeoutMs, ready, tokens.size.convert(), count.ptr)) == WS_TIMEOUT) {
            return@memScoped 0
        }
        val n = count.value.toInt()
        for (i in 0 until n) tokens[i] = ready[i].toLong()
        n
    }

    override fun wake() {
        orThrow(ws_poll_set_wake(pointer))
    }
}

/** Copies the event out of the core's memory (`data` lives until the next poll). */
private fun decode(e: ws_event): NativeEvent {
    val kind = e.kind.value.toInt()
    val data = e.data
    val payload = if (data == null || e.len == 0uL) null else data.readBytes(e.len.toInt())
    return NativeEvent.decode(
        kind = kind,
        state = e.state.value.toInt(),
        closeCode = e.close_code.toInt(),
        code = if (kind == Codes.WS_EVENT_RECONNECTING) e.attempt.toInt() else e.error,
        delayMs = e.delay_ms.toLong(),
        payload = payload,
    )
}

/** Returns [status] when it is not a failure; else throws the matching [TetherError] with `ws_last_error`. */
internal fun orThrow(status: Int): Int {
    if (status >= 0) return status
    // Read on the failing thread, before any other call can replace it.
    val message = ws_last_error()?.toKStringFromUtf8()
    throw TetherError.of(status, message ?: "Tether call failed with status $status")
}
