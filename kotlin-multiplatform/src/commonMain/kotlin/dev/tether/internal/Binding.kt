package dev.tether.internal

import dev.tether.TetherStats

/**
 * What a platform provides to cross into the core: JNI on the JVM and Android (jvmMain),
 * cinterop on iOS and Linux (nativeMain). Everything above it (the handle counter, the
 * one poller of the process, event decoding, the session logic) is written once, here in
 * commonMain. Every call throws [dev.tether.TetherError] on failure.
 */
internal interface Binding {
    /** Opens a native client for [url] with [optionsJson]; it starts connecting at once. */
    fun connect(url: String, optionsJson: String): RawClient

    /**
     * Opens a native Socket.IO client (`sio_connect`). Its [RawClient] side is what the
     * poller and the lifecycle calls use; its events come as [NativeEvent.SocketIo] and the
     * common ones (state, reconnecting, error, terminated).
     */
    fun connectSocketIo(url: String, optionsJson: String): RawSocketIo

    /**
     * Opens a native Server-Sent Events client (`sse_connect`). Its events come as
     * [NativeEvent.ServerSent], [NativeEvent.Open] and the common ones (state,
     * reconnecting, error, terminated).
     */
    fun connectSse(url: String, optionsJson: String): RawSse

    /** A new, empty poll set (`ws_poll_set_new`). */
    fun newPollSet(): RawPollSet

    /** Starts a platform thread (daemon on the JVM) that runs [body] once. */
    fun startThread(name: String, body: () -> Unit)

    /** Native clients alive in the process (created and not yet freed). */
    fun liveClients(): Long

    /** Runs [action] once [owner] becomes unreachable (java.lang.ref.Cleaner on the JVM). */
    fun onUnreachable(owner: Any, action: () -> Unit)

    /**
     * How long the poller waits before calling [idle] when nothing happens: -1 (forever)
     * where unreachable owners are found without help (the JVM's Cleaner).
     */
    val idleTimeoutMs: Int

    /** Called by the poller when [idleTimeoutMs] passed without events. */
    fun idle()
}

/**
 * One native client, raw: no care for its lifetime (that is [GuardedClient]'s). Calls
 * may come from any thread, but [drain] from one at a time and none after [free].
 */
internal interface RawClient {
    /** Queues a text message; false when the outgoing queue is full (nothing taken). */
    fun sendText(text: String): Boolean

    /** Queues a binary message; false when the outgoing queue is full (nothing taken). */
    fun sendBinary(data: ByteArray): Boolean

    /** Stores a tracked text message in the outbox; its id, or null when the outbox is full (nothing taken). */
    fun sendTrackedText(text: String): Long?

    /** Stores a tracked binary message in the outbox; its id, or null when the outbox is full (nothing taken). */
    fun sendTrackedBinary(data: ByteArray): Long?

    /** The server confirmed tracked message [id]; an id that is not pending throws InvalidArgument. */
    fun ack(id: Long)

    /** Messages in the outbox: not yet proven read by the server, or tracked and not acked. */
    fun outboxPending(): Long

    fun close(code: Int, reason: String)
    fun pause()
    fun resume()
    fun networkChanged(available: Boolean)
    fun reconnect()
    fun flush()
    fun setHeader(name: String, value: String?)
    fun stats(): TetherStats

    /**
     * Appends the events pending now (up to about [max]) to [into], decoded, without
     * waiting; none when nothing is pending. TERMINATED, once it comes, is the last one
     * appended. Throws [dev.tether.TetherError.Closed] once TERMINATED was returned.
     */
    fun drain(into: MutableList<NativeEvent>, max: Int)

    /** Releases the native client: once, after every other call has returned. */
    fun free()
}

/**
 * A native Socket.IO client. The WebSocket-only calls of [RawClient] (sends, outbox, flush,
 * stats) throw [dev.tether.TetherError.InvalidArgument]: Socket.IO sends with [emit].
 */
internal interface RawSocketIo : RawClient {
    fun join(namespace: String, authJson: String?)
    fun leave(namespace: String)

    /** Emits; the ack id (≥ 1) when [wantAck], 0 otherwise; null when the queue is full. */
    fun emit(namespace: String, event: String, argsJson: String, attachments: List<ByteArray>, wantAck: Boolean): Long?

    /** Answers the server's event [ackId]; false when the queue is full. */
    fun ack(namespace: String, ackId: Long, argsJson: String, attachments: List<ByteArray>): Boolean
}

/**
 * A native Server-Sent Events client: receive-only. The sending calls of [RawClient] (sends,
 * outbox, flush) and stats throw [dev.tether.TetherError.InvalidArgument]; close takes no
 * code (an SSE stream has no close handshake).
 */
internal interface RawSse : RawClient

/**
 * The WebSocket-only calls of [RawClient] for the clients that have none (Socket.IO emits,
 * SSE only reads): each throws [dev.tether.TetherError.InvalidArgument].
 */
internal abstract class NotAWebSocket(private val kind: String) : RawClient {
    private fun notHere(what: String): Nothing =
        throw dev.tether.TetherError.InvalidArgument("$what is for WebSocket clients, not $kind clients")

    override fun sendText(text: String): Boolean = notHere("sendText")
    override fun sendBinary(data: ByteArray): Boolean = notHere("sendBinary")
    override fun sendTrackedText(text: String): Long? = notHere("the outbox")
    override fun sendTrackedBinary(data: ByteArray): Long? = notHere("the outbox")
    override fun ack(id: Long) = notHere("the outbox")
    override fun outboxPending(): Long = notHere("the outbox")
    override fun flush() = notHere("flush")
    override fun stats(): dev.tether.TetherStats = notHere("stats")
}

/**
 * A set of clients that one thread waits on (`ws_poll_set_*`): a wait reports the tokens of
 * clients with events pending and disarms them until [rearm].
 */
internal interface RawPollSet {
    fun add(client: RawClient, token: Long)
    fun rearm(client: RawClient)

    /** On return no wait uses [client]: it may be freed. */
    fun remove(client: RawClient)

    /** Asks for a room notice ([ROOM] | token) once [client]'s outgoing queue has room again. */
    fun watchRoom(client: RawClient)

    /** Writes ready tokens to [tokens]; returns how many (0: timeout or [wake]). */
    fun wait(timeoutMs: Int, tokens: LongArray): Int
    fun wake()

    companion object {
        /** `WS_POLL_SET_ROOM`: bit 63, a Long's sign bit. */
        const val ROOM: Long = Long.MIN_VALUE
    }
}

/** Receives a client's events, in order, from its drain coroutine. */
internal interface EventSink {
    /** May suspend (the client's events then wait in the core: backpressure); never throws. */
    suspend fun deliver(event: NativeEvent)

    /** Delivers [event] if that needs no waiting; false, with nothing done, when it would wait. */
    fun tryDeliver(event: NativeEvent): Boolean

    /**
     * The native client has been freed: after [NativeEvent.Terminated], once no call on it
     * is in flight. What it held (its socket, its outbox file) is released. Called once,
     * from any thread; never throws.
     */
    fun released()

    /** The outgoing queue made room after a [Poller.watchRoom]: a waiting send may go now. */
    fun roomMade()
}

/** What the session calls on its native client (see [GuardedClient]). */
internal interface NativeClient {
    fun sendText(text: String): Boolean
    fun sendBinary(data: ByteArray): Boolean
    fun sendTrackedText(text: String): Long?
    fun sendTrackedBinary(data: ByteArray): Long?
    fun ack(id: Long)
    fun outboxPending(): Long
    fun close(code: Int, reason: String)
    fun pause()
    fun resume()
    fun networkChanged(available: Boolean)
    fun reconnect()
    fun flush()
    fun setHeader(name: String, value: String?)
    fun stats(): TetherStats
}

/** An event of the core, decoded by the binding. */
internal sealed class NativeEvent {
    /** A `ws_state` value ([Codes], `WS_STATE_…`). */
    class State(val state: Int) : NativeEvent()
    class Open(val protocol: String?) : NativeEvent()
    class Text(val text: String) : NativeEvent()
    class Binary(val data: ByteArray) : NativeEvent()
    class Closed(val code: Int, val reason: String) : NativeEvent()
    class Reconnecting(val attempt: Int, val delayMs: Long) : NativeEvent()
    class Error(val code: Int, val message: String) : NativeEvent()

    /** Tracked outbox messages that went out again, oldest first. */
    class Resent(val ids: LongArray) : NativeEvent()
    data object Terminated : NativeEvent()

    /** What a Socket.IO server did (Socket.IO clients only). */
    class SocketIo(val event: SioNativeEvent) : NativeEvent()

    /**
     * An event of a `text/event-stream` (Server-Sent Events clients only): its [type]
     * (`"message"` when the stream named none), the last event [id] in force (null until one
     * was set) and its [data].
     */
    class ServerSent(val type: String, val id: String?, val data: String) : NativeEvent()

    companion object {
        private val EMPTY = ByteArray(0)

        /**
         * One event from the fields both crossings carry (the `ws_event` struct, the JNI
         * wire record): [kind] is a `ws_event_kind`, [payload] the event's bytes (null:
         * none). A kind this version does not know is an internal error.
         */
        fun decode(kind: Int, state: Int, closeCode: Int, code: Int, delayMs: Long, payload: ByteArray?): NativeEvent =
            when (kind) {
                Codes.WS_EVENT_STATE -> State(state)
                Codes.WS_EVENT_OPEN -> Open(payload?.takeIf { it.isNotEmpty() }?.decodeToString())
                Codes.WS_EVENT_TEXT -> Text(payload?.decodeToString() ?: "")
                Codes.WS_EVENT_BINARY -> Binary(payload ?: EMPTY)
                Codes.WS_EVENT_CLOSED -> Closed(closeCode, payload?.decodeToString() ?: "")
                Codes.WS_EVENT_RECONNECTING -> Reconnecting(code, delayMs)
                Codes.WS_EVENT_ERROR -> Error(code, payload?.decodeToString() ?: "")
                Codes.WS_EVENT_TERMINATED -> Terminated
                Codes.WS_EVENT_RESENT -> Resent(littleEndianLongs(payload))
                else -> throw dev.tether.TetherError.Internal("event kind $kind is unknown to this binding")
            }

        /** The ids of a RESENT event: little-endian u64s, oldest first. */
        fun littleEndianLongs(bytes: ByteArray?): LongArray {
            if (bytes == null) return LongArray(0)
            return LongArray(bytes.size / 8) { i ->
                var v = 0L
                for (b in 7 downTo 0) v = (v shl 8) or (bytes[i * 8 + b].toLong() and 0xFF)
                v
            }
        }
    }
}

/** The binding of this platform. */
internal expect fun platformBinding(): Binding
