package dev.tether.testkit

import dev.tether.TetherConfig
import dev.tether.testkit.internal.Guarded
import dev.tether.testkit.internal.SioNative
import dev.tether.testkit.internal.jsonString
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.jsonArray

/**
 * A Socket.IO server (Engine.IO v4 + Socket.IO v5) on 127.0.0.1 for unit tests, on a free
 * port, with its own native thread (Tether's Rust test kit). It offers [transports]
 * (WebSocket and HTTP long-polling with the upgrade by default), pings every [pingInterval],
 * accepts namespace CONNECTs unless [enqueueConnectReply] says otherwise, records what
 * clients emit, echoes (each event emitted back, each ack asked for answered with the
 * arguments) unless [echo] is false, and gives a [SocketIoServerSocket] per joined namespace
 * to emit, kick and inject faults. Every method is a plain blocking call from any thread.
 *
 * ```
 * TetherTestSocketIoServer().use { server ->
 *     val io = TetherClient(TetherConfig().withSocketIoTestTimers()).connectSocketIo(server.url)
 *     io.emit("hello", JsonPrimitive(1))
 *     assertEquals("hello", server.awaitEvent().name)
 * }
 * ```
 *
 * [close] stops the server and kills every connection; call it (or `use`) in each test.
 */
public class TetherTestSocketIoServer(
    /** `"polling"`, `"websocket"`, or both. */
    public val transports: Set<String> = setOf("polling", "websocket"),
    /** The server's pings; a client finds a silent link dead after [pingInterval] + [pingTimeout]. */
    public val pingInterval: Duration = 1.seconds,
    public val pingTimeout: Duration = 1.seconds,
    /** The largest POST body or WebSocket message taken; a larger one ends the session. */
    public val maxPayload: Long = 1_000_000,
    echo: Boolean = true,
) : AutoCloseable {
    private val handle = Guarded(SioNative.start(configJson(echo)), SioNative::free)
    private val handedOut = mutableListOf<Guarded>()

    /** The server's port on 127.0.0.1. */
    public val port: Int = handle.use { SioNative.number(it, SioNative.PORT) }

    /** `http://127.0.0.1:PORT`: what `connectSocketIo` takes (the path is `/socket.io/`). */
    public val url: String = "http://127.0.0.1:$port"

    private fun configJson(echo: Boolean): String =
        """{"transports":[${transports.joinToString(",") { jsonString(it) }}],""" +
            """"ping_interval_ms":${pingInterval.inWholeMilliseconds},""" +
            """"ping_timeout_ms":${pingTimeout.inWholeMilliseconds},"max_payload":$maxPayload,"echo":$echo}"""

    /** Whether events are echoed and acks answered with their arguments. */
    public fun setEcho(echo: Boolean): Unit =
        handle.use { SioNative.control(it, SioNative.SET_ECHO, null, echo.toString()) }

    /**
     * Queues the answer to a coming CONNECT of [namespace] (null: of any namespace); first
     * queued, first used; once none is left, CONNECTs are accepted.
     */
    public fun enqueueConnectReply(reply: ConnectReply, namespace: String? = null): Unit =
        handle.use { SioNative.control(it, SioNative.PUSH_CONNECT_REPLY, namespace, reply.toJson()) }

    /**
     * Replaces the network conditions of every connection, current and new. A round trip
     * longer than [pingTimeout] looks like a dead link to clients (pings come [pingInterval]
     * after each pong).
     */
    public fun setNetwork(network: NetworkConditions): Unit =
        handle.use { SioNative.control(it, SioNative.SET_NETWORK, null, network.toJson()) }

    /** Lifts every network condition. */
    public fun liftNetwork(): Unit = setNetwork(NetworkConditions())

    /** Like a server restart: kills every connection, forgets every session, listens again on the same port. */
    public fun restart(): Unit = handle.use { SioNative.control(it, SioNative.RESTART, null, null) }

    /** Kills every connection and forgets every session; keeps listening. */
    public fun killConnections(): Unit = handle.use { SioNative.control(it, SioNative.KILL_CONNECTIONS, null, null) }

    /** Engine.IO sessions opened so far. */
    public val sessionCount: Int get() = handle.use { SioNative.number(it, SioNative.SESSIONS) }

    private fun record(what: Int, timeout: Duration): Array<Any?>? =
        handle.use { SioNative.awaitRecord(it, what, timeout.inWholeMilliseconds) }

    /** The next namespace CONNECT (accepted or refused) not taken yet, or null after [timeout]. */
    public fun pollConnect(timeout: Duration = DEFAULT_TIMEOUT): RecordedConnect? =
        record(SioNative.CONNECT, timeout)?.let { f ->
            RecordedConnect(
                (f[0] as String).toLong(), f[1] as String, f[2] == "true",
                (f[3] as String?)?.let { Json.parseToJsonElement(it) },
            )
        }

    /** The next namespace CONNECT not taken yet; fails the test after [timeout]. */
    public fun awaitConnect(timeout: Duration = DEFAULT_TIMEOUT): RecordedConnect =
        pollConnect(timeout) ?: throw AssertionError("no namespace CONNECT within $timeout")

    /** The next event a client emitted not taken yet, or null after [timeout]. */
    public fun pollEvent(timeout: Duration = DEFAULT_TIMEOUT): RecordedEvent? =
        record(SioNative.EVENT, timeout)?.let { f ->
            RecordedEvent(
                (f[0] as String).toLong(), f[1] as String, f[2] as String,
                Json.parseToJsonElement(f[3] as String).jsonArray,
                (f[4] as String?)?.toLong(),
                (5 until f.size).map { f[it] as ByteArray },
            )
        }

    /** The next event a client emitted not taken yet; fails the test after [timeout]. */
    public fun awaitEvent(timeout: Duration = DEFAULT_TIMEOUT): RecordedEvent =
        pollEvent(timeout) ?: throw AssertionError("no Socket.IO event within $timeout")

    /** The next DISCONNECT a client sent (it left a namespace), or null after [timeout]. */
    public fun pollDisconnect(timeout: Duration = DEFAULT_TIMEOUT): RecordedDisconnect? =
        record(SioNative.DISCONNECT, timeout)?.let { f -> RecordedDisconnect((f[0] as String).toLong(), f[1] as String) }

    /** The next DISCONNECT a client sent; fails the test after [timeout]. */
    public fun awaitDisconnect(timeout: Duration = DEFAULT_TIMEOUT): RecordedDisconnect =
        pollDisconnect(timeout) ?: throw AssertionError("no client DISCONNECT within $timeout")

    /**
     * The next client socket (an accepted CONNECT) not taken yet; fails the test after
     * [timeout]. The server frees its handle on [close].
     */
    public fun awaitSocket(timeout: Duration = DEFAULT_TIMEOUT): SocketIoServerSocket {
        val raw = handle.use { SioNative.awaitSocket(it, timeout.inWholeMilliseconds) }
        if (raw == 0L) throw AssertionError("no Socket.IO socket within $timeout")
        val guarded = Guarded(raw, SioNative::socketFree)
        synchronized(handedOut) { handedOut += guarded }
        return SocketIoServerSocket(guarded, this::track)
    }

    private fun track(ack: Guarded) {
        synchronized(handedOut) { handedOut += ack }
    }

    /** Stops the server: kills every connection, frees the native server and handles. Idempotent. */
    override fun close() {
        synchronized(handedOut) { handedOut.forEach { it.free() } }
        handle.free()
    }

    public companion object {
        /** How long the awaits wait unless told otherwise. */
        public val DEFAULT_TIMEOUT: Duration = 10.seconds
    }
}

/** The answer to a namespace CONNECT, queued with [TetherTestSocketIoServer.enqueueConnectReply]. */
public sealed class ConnectReply {
    internal abstract fun toJson(): String

    public data object Accept : ConnectReply() {
        override fun toJson(): String = "\"accept\""
    }

    /** CONNECT_ERROR with [data] (the client's refusal carries it). */
    public data class Refuse(val data: JsonElement) : ConnectReply() {
        override fun toJson(): String = """{"refuse":$data}"""
    }

    public companion object {
        /** A refusal with `{"message": message}`. */
        public fun refuse(message: String): ConnectReply =
            Refuse(Json.parseToJsonElement("""{"message":${jsonString(message)}}"""))
    }
}

/** A namespace CONNECT a client sent, with its `auth` payload (null: none). */
public data class RecordedConnect(
    val session: Long,
    val namespace: String,
    val accepted: Boolean,
    val auth: JsonElement?,
)

/** An event a client emitted; [ackId] is set when the client waits for an ack. */
public class RecordedEvent(
    public val session: Long,
    public val namespace: String,
    public val name: String,
    /** The arguments after the name (binary ones as `{"_placeholder":true,"num":i}`). */
    public val args: JsonArray,
    public val ackId: Long?,
    public val attachments: List<ByteArray>,
) {
    override fun toString(): String = "RecordedEvent($namespace, $name, $args, ack=$ackId, ${attachments.size} attachment(s))"
}

/** A client left [namespace] (its DISCONNECT). */
public data class RecordedDisconnect(val session: Long, val namespace: String)

/**
 * The server side of one client socket (a namespace joined on one Engine.IO session).
 * Commands are queued in order and return at once; each returns false when the socket was
 * already gone (nothing was done).
 */
public class SocketIoServerSocket internal constructor(
    private val handle: Guarded,
    private val track: (Guarded) -> Unit,
) {
    private val info = handle.use { SioNative.socketInfo(it) }

    /** The Engine.IO session (from 1, per server; [RecordedEvent.session]). */
    public val session: Long = (info[0] as String).toLong()
    public val namespace: String = info[1] as String
    /** The Socket.IO socket id the CONNECT was answered with. */
    public val id: String = info[2] as String

    private fun state(): Int = handle.use { SioNative.socketState(it) }

    /** Whether the session lives and the namespace is still joined. */
    public val isConnected: Boolean get() = state() != 0

    /** `"polling"` or `"websocket"` (once upgraded); null once gone. */
    public val transport: String? get() = when (state()) {
        1 -> "polling"
        2 -> "websocket"
        else -> null
    }

    private fun command(op: Int, event: String? = null, args: List<JsonElement> = emptyList(), data: ByteArray? = null) =
        handle.use { SioNative.socketCommand(it, op, event, JsonArray(args).toString(), data) }

    /** Emits [event] with [args]. */
    public fun emit(event: String, vararg args: JsonElement): Boolean = command(SioNative.EMIT, event, args.toList())

    /** Emits [event] with [args] and one binary [attachment] (appended as the last argument). */
    public fun emitBinary(event: String, args: List<JsonElement>, attachment: ByteArray): Boolean =
        command(SioNative.EMIT, event, args, attachment)

    /** Emits [event] asking for an ack; null if the socket is gone. */
    public fun emitWithAck(event: String, vararg args: JsonElement): ServerAck? {
        val raw = handle.use { SioNative.emitWithAck(it, event, JsonArray(args.toList()).toString()) }
        if (raw == 0L) return null
        val guarded = Guarded(raw, SioNative::ackFree)
        track(guarded)
        return ServerAck(guarded)
    }

    /** Kicks the client out of the namespace (it does not rejoin by itself). */
    public fun disconnect(): Boolean = command(SioNative.KICK)

    /** Closes the whole Engine.IO session; the client reconnects with a new one. */
    public fun closeSession(): Boolean = command(SioNative.CLOSE_SESSION)

    /** Resets every TCP connection of the session (RST) and forgets the session. */
    public fun dropTransport(): Boolean = command(SioNative.DROP_TRANSPORT)

    /** Stops (false) or restarts the server's pings: stopped, the client finds the link dead by itself. */
    public fun setHeartbeat(on: Boolean): Boolean = command(if (on) SioNative.HEARTBEAT_ON else SioNative.HEARTBEAT_OFF)

    override fun toString(): String = "SocketIoServerSocket($session, $namespace, $id)"
}

/** A server emit waiting for the client's ack. */
public class ServerAck internal constructor(private val handle: Guarded) {
    /** The client's answer, or null after [timeout] (or once the session ended). */
    public fun poll(timeout: Duration = TetherTestSocketIoServer.DEFAULT_TIMEOUT): JsonArray? =
        handle.use { SioNative.ackAwait(it, timeout.inWholeMilliseconds) }?.let { Json.parseToJsonElement(it).jsonArray }

    /** The client's answer; fails the test after [timeout]. */
    public fun await(timeout: Duration = TetherTestSocketIoServer.DEFAULT_TIMEOUT): JsonArray =
        poll(timeout) ?: throw AssertionError("no ack within $timeout")
}

/**
 * Makes the timers of a Socket.IO client short for tests against [TetherTestSocketIoServer]
 * (the heartbeat is the server's: set [TetherTestSocketIoServer.pingInterval] instead):
 * reconnects start after 10 ms and back off to at most 100 ms without jitter, a silent
 * handshake gives up after 2 s. Returns this config, for chaining.
 */
public fun TetherConfig.withSocketIoTestTimers(): TetherConfig = apply {
    connectTimeout = 2.seconds
    reconnect {
        initialDelay = 10.milliseconds
        maxDelay = 100.milliseconds
        jitter = 0.0
    }
}
