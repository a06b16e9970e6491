package dev.tether

import dev.tether.internal.JsonWriter
import dev.tether.internal.SocketIoCore
import dev.tether.internal.keepAlive
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.emitAll
import kotlinx.coroutines.flow.filter
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.receiveAsFlow
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonObject

/**
 * What a Socket.IO client adds to a [TetherConfig] (whose headers, timeouts, reconnect,
 * queue, TLS and proxy settings apply as for WebSocket; the server sets the heartbeat, so
 * `pingInterval`, `pongTimeout` and `subprotocols` are refused, and so is the outbox).
 */
@TetherDsl
public class SocketIoConfig {
    /**
     * `["polling", "websocket"]` (the default: long-polling, upgraded to WebSocket when the
     * server offers it), `["websocket"]` or `["polling"]`.
     */
    public var transports: List<String>? = null

    /** The Engine.IO path (default `/socket.io/`). */
    public var path: String? = null

    /** Sent with every join of `/`, after every reconnect too. */
    public var auth: JsonObject? = null

    /** How long an [SocketIoNamespace.emitWithAck] waits from the write (default 10 s). */
    public var ackTimeout: Duration? = null

    internal fun withInto(base: String): String {
        val extra = JsonWriter().apply {
            obj {
                transports?.let { field("transports") { array(it) } }
                path?.let { field("path", it) }
                ackTimeout?.let { field("ack_timeout_ms", it.inWholeMilliseconds) }
            }
        }.toString().removePrefix("{").removeSuffix("}")
        val auth = auth?.let { "\"auth\":$it" }
        val parts = listOfNotNull(base.removePrefix("{").removeSuffix("}").ifEmpty { null }, extra.ifEmpty { null }, auth)
        return parts.joinToString(",", prefix = "{", postfix = "}")
    }
}

/** Where a namespace stands on the current connection. */
public sealed class NamespaceState {
    /** Joined by the app, waiting for the server's answer (after a reconnect too). */
    public data object Joining : NamespaceState()

    /** Connected; [recovered]: the server restored the session, missed events follow. */
    public data class Connected(val recovered: Boolean) : NamespaceState()

    /** Refused by the server with its [data] (`{"message": …, "data": …}`); join again to retry. */
    public data class Refused(val data: JsonElement) : NamespaceState()

    /**
     * Not connected: [reason] is `transport close` (the connection was lost: it rejoins
     * after the reconnect), `io server disconnect` or `io client disconnect` (for good).
     */
    public data class Disconnected(val reason: String) : NamespaceState()
}

/**
 * An event from the server: its [name], its arguments as JSON, and its binary
 * [attachments] (which [args] refers to as `{"_placeholder":true,"num":i}`).
 */
public class SocketIoEvent internal constructor(
    public val namespace: String,
    public val name: String,
    public val args: JsonArray,
    public val attachments: List<ByteArray>,
    private val answer: ((JsonArray, List<ByteArray>) -> Unit)?,
) {
    /** Whether the server waits for [ack]. */
    public val wantsAck: Boolean get() = answer != null

    /** Answers the server's acknowledgement callback (once). */
    public fun ack(vararg args: JsonElement) {
        ackBinary(args.toList(), emptyList())
    }

    /** [ack] with binary attachments (placed as for [SocketIoNamespace.emitBinary]). */
    public fun ackBinary(args: List<JsonElement>, attachments: List<ByteArray>) {
        val answer = answer ?: throw TetherError.InvalidArgument("event \"$name\" asked for no acknowledgement")
        answer(JsonArray(args), attachments)
    }

    override fun toString(): String = "SocketIoEvent($namespace, $name, $args, ${attachments.size} attachment(s))"
}

/** An answer to [SocketIoNamespace.emitWithAck]: its arguments and attachments. */
public class SocketIoAck internal constructor(
    public val args: JsonArray,
    public val attachments: List<ByteArray>,
) {
    override fun toString(): String = "SocketIoAck($args, ${attachments.size} attachment(s))"
}

/**
 * One namespace of a [SocketIo] client: joined (with its auth) now and after every
 * reconnect, until [leave] or the server ends it. Emits made while it is not connected wait,
 * in order, and go out once it is.
 */
public class SocketIoNamespace internal constructor(
    public val name: String,
    private val owner: SocketIo,
) {
    private val core get() = owner.core

    /** Joining → Connected, and Disconnected/Refused when it ends. */
    public val state: StateFlow<NamespaceState> get() = core.namespace(name).state

    /**
     * Every event of this namespace, in order. Like Socket.IO's listeners, an event that
     * comes while nobody collects is dropped; a slow collector makes the core stop reading
     * (nothing is dropped then).
     */
    public val events: Flow<SocketIoEvent> = flow {
        try {
            emitAll(core.namespace(name).events)
        } finally {
            keepAlive(owner)
        }
    }

    /** The events called [event]: `socket.on(event)`. */
    public fun on(event: String): Flow<SocketIoEvent> = events.filter { it.name == event }

    /** Emits [event] with [args]; returns at once (it waits in the queue if need be). */
    public fun emit(event: String, vararg args: JsonElement) {
        core.emit(name, event, args.toList(), emptyList(), wantAck = false)
    }

    /**
     * Emits with binary [attachments]: [args] may refer to them as
     * `{"_placeholder":true,"num":i}`; those not referred to are appended as the last
     * arguments, in order.
     */
    public fun emitBinary(event: String, args: List<JsonElement>, attachments: List<ByteArray>) {
        core.emit(name, event, args, attachments, wantAck = false)
    }

    /**
     * Emits and suspends until the server acknowledges; throws [TetherError.AckTimeout]
     * when no answer came within [SocketIoConfig.ackTimeout] of the write (or [timeout],
     * if shorter), [TetherError.Closed] when the client ended first.
     */
    public suspend fun emitWithAck(event: String, vararg args: JsonElement, timeout: Duration? = null): SocketIoAck =
        emitBinaryWithAck(event, args.toList(), emptyList(), timeout)

    /** [emitWithAck] with binary attachments. */
    public suspend fun emitBinaryWithAck(
        event: String,
        args: List<JsonElement>,
        attachments: List<ByteArray>,
        timeout: Duration? = null,
    ): SocketIoAck {
        val id = core.emit(name, event, args, attachments, wantAck = true)
        return core.awaitAck(id, timeout)
    }

    /**
     * Suspends until this namespace is connected; throws [TetherError.Handshake] with the
     * server's data when it refuses, [TetherError.Closed] when it ends, or
     * [TetherError.ConnectTimeout] after [timeout].
     */
    public suspend fun awaitConnected(timeout: Duration = 10.seconds): SocketIoNamespace {
        val reached = withTimeoutOrNull(timeout) {
            state.first { it is NamespaceState.Connected || it is NamespaceState.Refused || isGone(it) }
        } ?: throw TetherError.ConnectTimeout("namespace $name did not connect within $timeout")
        when (reached) {
            is NamespaceState.Connected -> return this
            is NamespaceState.Refused -> throw TetherError.Handshake("namespace $name was refused: ${reached.data}")
            else -> throw TetherError.Closed("namespace $name ended before it connected: $reached")
        }
    }

    private fun isGone(s: NamespaceState): Boolean =
        s is NamespaceState.Disconnected && s.reason != "transport close"

    /** Leaves the namespace: the server is told, and it is not joined again. */
    public fun leave() {
        core.leave(name)
    }
}

/**
 * A Socket.IO client: one connection (long-polling, upgraded to WebSocket, or WebSocket
 * only) that Tether keeps up with its reconnect, backoff, pause/resume and network hints,
 * and the namespaces joined on it. The main namespace `/` is joined at once; its calls are
 * here too ([on], [emit], [emitWithAck]).
 *
 * ```
 * val io = client.connectSocketIo("https://chat.example.com") { auth = buildJsonObject { put("token", t) } }
 * io.on("message").collect { println(it.args) }
 * val answer = io.emitWithAck("join", JsonPrimitive("room-7"))
 * ```
 */
public class SocketIo internal constructor(
    /** The URL given to [TetherClient.connectSocketIo]. */
    public val url: String,
    internal val core: SocketIoCore,
) : AutoCloseable {
    /** The connection: Connecting → Open → (Reconnecting → Open)* → Closing → Closed. */
    public val state: StateFlow<ConnectionState> get() = core.state

    /** Retries and errors of the connection, in order (the latest 64 are kept). */
    public val events: Flow<TetherEvent> = flow {
        try {
            emitAll(core.events.receiveAsFlow())
        } finally {
            keepAlive(this@SocketIo)
        }
    }

    /** The main namespace, `/`. */
    public val main: SocketIoNamespace = SocketIoNamespace("/", this)

    /** Joins [name] (`/admin`) with [auth], or returns the namespace to rejoin it with new auth. */
    public fun namespace(name: String, auth: JsonObject? = null): SocketIoNamespace {
        core.join(name, auth?.toString())
        return SocketIoNamespace(name, this)
    }

    public fun on(event: String): Flow<SocketIoEvent> = main.on(event)
    public fun emit(event: String, vararg args: JsonElement): Unit = main.emit(event, *args)
    public suspend fun emitWithAck(event: String, vararg args: JsonElement, timeout: Duration? = null): SocketIoAck =
        main.emitWithAck(event, *args, timeout = timeout)

    /** Suspends until `/` is connected (see [SocketIoNamespace.awaitConnected]). */
    public suspend fun awaitConnected(timeout: Duration = 10.seconds): SocketIo {
        main.awaitConnected(timeout)
        return this
    }

    /** The app went to the background: the connection closes, emits keep queueing. */
    public fun pause(): Unit = core.client.pause()

    /** Connects now (after [pause], or to cut a backoff wait short). */
    public fun resume(): Unit = core.client.resume()

    /** The OS's network hint. */
    public fun networkChanged(available: Boolean): Unit = core.client.networkChanged(available)

    /** Drops the connection and opens a fresh one now (e.g. after [setHeader]). */
    public fun reconnect(): Unit = core.client.reconnect()

    /** Sets (or with null removes) a header of the next handshakes and polling requests. */
    public fun setHeader(name: String, value: String?): Unit = core.client.setHeader(name, value)

    /** Leaves every namespace and closes; [state] then ends in Closed. */
    override fun close() {
        core.close()
    }

    /** Suspends until the client has ended and its native client was released. */
    public suspend fun awaitClosed() {
        core.job.join()
    }
}

/**
 * The receiver of [TetherClient.socketIo]'s block: the client's calls, in a coroutine scope
 * (listeners started with `launch`/`async` end with the block).
 */
public class SocketIoScope internal constructor(
    public val io: SocketIo,
    scope: CoroutineScope,
) : CoroutineScope by scope {
    public val main: SocketIoNamespace get() = io.main
    public fun on(event: String): Flow<SocketIoEvent> = io.on(event)
    public fun emit(event: String, vararg args: JsonElement): Unit = io.emit(event, *args)
    public suspend fun emitWithAck(event: String, vararg args: JsonElement, timeout: Duration? = null): SocketIoAck =
        io.emitWithAck(event, *args, timeout = timeout)
    public fun namespace(name: String, auth: JsonObject? = null): SocketIoNamespace = io.namespace(name, auth)
}
