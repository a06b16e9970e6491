package dev.tether

import dev.tether.internal.JsonWriter
import dev.tether.internal.SseCore
import dev.tether.internal.keepAlive
import kotlin.time.Duration
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.channels.ChannelIterator
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.FlowCollector
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.emitAll
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.receiveAsFlow
import kotlinx.serialization.KSerializer
import kotlinx.serialization.serializer

/**
 * What a Server-Sent Events client adds to a [TetherConfig] (whose headers, connect timeout,
 * reconnect, TLS, `maxMessageBytes` (per event) and `maxUnpolledBytes` apply as for
 * WebSocket; the WebSocket-only options, `subprotocols`, `pingInterval`, `pongTimeout`,
 * `closeTimeout`, `maxFrameBytes`, the queue and the outbox, are refused).
 */
@TetherDsl
public class SseConfig {
    /** The request method (default `GET`); e.g. `POST` for APIs that stream their answer. */
    public var method: String? = null

    /** Text sent with every request, reconnects included (needs a method like `POST`). */
    public var body: String? = null

    /** Sent as `Last-Event-ID` from the first request on: resume where a previous run stopped. */
    public var lastEventId: String? = null

    /**
     * No byte (comments included) within it: the stream is dead and is reopened (default
     * 60 s; [Duration.ZERO]: no check).
     */
    public var readTimeout: Duration? = null

    internal fun withInto(base: String): String {
        val own = JsonWriter().apply {
            obj {
                method?.let { field("method", it) }
                body?.let { field("body", it) }
                lastEventId?.let { field("last_event_id", it) }
                readTimeout?.let { field("read_timeout_ms", it.inWholeMilliseconds) }
            }
        }.toString().removePrefix("{").removeSuffix("}")
        val parts = listOfNotNull(base.removePrefix("{").removeSuffix("}").ifEmpty { null }, own.ifEmpty { null })
        return parts.joinToString(",", prefix = "{", postfix = "}")
    }
}

/**
 * One event of a `text/event-stream`, by the WHATWG EventSource rules: its [type] (the
 * `event:` field; `"message"` when the stream named none; Ktor calls it `event`), the last
 * event [id] in force (null until the stream, or [SseConfig.lastEventId], set one; `""`
 * after an empty `id:`), and its [data] (the `data:` lines joined by `"\n"`).
 */
public data class ServerSentEvent(
    val type: String = "message",
    val id: String? = null,
    val data: String,
)

/**
 * The events of a Server-Sent Events client ([ServerSentEvents.incoming], and `incoming`
 * inside [TetherClient.sse]), in order, across reconnections; it ends when the client has
 * ended (closed, a 204, or an error that is not retried). Collect it as a [Flow] or iterate
 * it (`for (event in incoming)`); several readers share the events (each goes to one). Not
 * reading makes the client stop reading the stream once [TetherConfig.incomingBuffer]
 * events and [TetherConfig.maxUnpolledBytes] are waiting: nothing is dropped.
 */
public class IncomingServerSentEvents internal constructor(
    private val owner: Any,
    private val core: SseCore,
) : Flow<ServerSentEvent> {
    private val events: Flow<ServerSentEvent> = flow {
        try {
            emitAll(core.incoming.receiveAsFlow())
        } finally {
            keepAlive(owner)
        }
    }

    override suspend fun collect(collector: FlowCollector<ServerSentEvent>): Unit = events.collect(collector)

    /** `for (event in incoming) { … }`: ends with the client. */
    public operator fun iterator(): ChannelIterator<ServerSentEvent> = OwnedIterator(owner, core.incoming.iterator())

    /**
     * The events' data decoded as [T] with the client's [TetherConfig.contentConverter] (as
     * the text of a [Frame.Text], like a WebSocket text message): each a [Decoded.Value], or
     * a [Decoded.Failure] for data that did not decode (the flow and the client go on).
     * Throws [TetherError.InvalidArgument] when no converter is set.
     */
    public inline fun <reified T> deserialized(): Flow<Decoded<T>> = deserialized(serializer<T>())

    /** As [deserialized], with an explicit [serializer]. */
    public fun <T> deserialized(serializer: KSerializer<T>): Flow<Decoded<T>> {
        val converter = core.converter()
        return map { event -> IncomingFrames.decode(converter, serializer, Frame.Text(event.data)) }
    }

    private class OwnedIterator(
        private val owner: Any,
        private val inner: ChannelIterator<ServerSentEvent>,
    ) : ChannelIterator<ServerSentEvent> {
        override suspend fun hasNext(): Boolean = inner.hasNext().also { keepAlive(owner) }
        override fun next(): ServerSentEvent = inner.next()
    }
}

/**
 * A Server-Sent Events client: one event stream that Tether keeps up, reconnecting with
 * backoff (and `Retry-After`, and the stream's `retry:`) and resuming with `Last-Event-ID`,
 * with pause/resume and network hints, until [close]. Receive-only.
 *
 * ```
 * val feed = client.connectSse("https://api.example.com/orders/7/status", scope) { readTimeout = 30.seconds }
 * for (event in feed.incoming) println("${event.type}: ${event.data}")
 * ```
 */
public class ServerSentEvents internal constructor(
    /** The URL given to [TetherClient.connectSse]. */
    public val url: String,
    internal val core: SseCore,
) : AutoCloseable {
    /**
     * Connecting → Open → (Reconnecting → Open)* → Closed. Paused or offline:
     * `Reconnecting(0, Duration.INFINITE)`.
     */
    public val state: StateFlow<ConnectionState> = OwnedStateFlow(this, core.state)

    /** The events, in order (see [IncomingServerSentEvents]). */
    public val incoming: IncomingServerSentEvents = IncomingServerSentEvents(this, core)

    /**
     * Opens, scheduled retries and errors (an HTTP refusal as [TetherError.HttpStatus]), in
     * order; completes after [TetherEvent.Terminated]. The latest 256 are kept when nobody
     * collects.
     */
    public val events: Flow<TetherEvent> = flow {
        try {
            emitAll(core.events.receiveAsFlow())
        } finally {
            keepAlive(this@ServerSentEvents)
        }
    }

    /**
     * [event]'s data decoded as [T] with the client's [TetherConfig.contentConverter], Ktor's
     * `deserialize<T>(event.data)`: for streams whose events differ in type by [ServerSentEvent.type].
     * Throws [TetherDeserializeException] when it does not decode, [TetherError.InvalidArgument]
     * when no converter is set.
     */
    public inline fun <reified T> deserialize(event: ServerSentEvent): T = deserialize(serializer<T>(), event)

    /** As [deserialize], with an explicit [serializer]. */
    public fun <T> deserialize(serializer: KSerializer<T>, event: ServerSentEvent): T =
        when (val decoded = IncomingFrames.decode(core.converter(), serializer, Frame.Text(event.data))) {
            is Decoded.Value -> decoded.value
            is Decoded.Failure -> throw decoded.error
        }

    /**
     * Suspends until the stream is open and returns this client. Throws the error of an
     * attempt that failed since the last open ([TetherError.HttpStatus] for a refusal,
     * [TetherError.ConnectFailed] for a server that is down, …), [TetherError.Closed] when
     * the client ended first (a 204 too), [TetherError.ConnectTimeout] after [timeout]. The
     * client is not closed by it.
     */
    public suspend fun awaitOpen(timeout: Duration = TetherSession.DEFAULT_OPEN_TIMEOUT): ServerSentEvents {
        core.awaitOpen(timeout)
        keepAlive(this)
        return this
    }

    /** The app went to the background: the stream is dropped until [resume]. */
    public fun pause(): Unit = core.client.pause()

    /** Reopens now, with `Last-Event-ID` (after [pause], or to cut a backoff wait short). */
    public fun resume(): Unit = core.client.resume()

    /** The OS's network hint: true skips the rest of a backoff, false waits for the network. */
    public fun networkChanged(available: Boolean): Unit = core.client.networkChanged(available)

    /** Drops the stream and opens a fresh one now, with `Last-Event-ID` (e.g. after [setHeader]). */
    public fun reconnect(): Unit = core.client.reconnect()

    /**
     * Sets (or with null removes) a header of the next requests, e.g. a refreshed token;
     * [reconnect] uses it at once. `Last-Event-ID` and the headers the client sets itself
     * are refused ([TetherError.InvalidArgument]).
     */
    public fun setHeader(name: String, value: String?): Unit = core.client.setHeader(name, value)

    /** Stops for good: the stream is dropped, [incoming] ends, [state] ends in Closed. */
    override fun close() {
        core.close()
    }

    /** Suspends until the client has ended and its native client was released. */
    public suspend fun awaitClosed() {
        core.job.join()
    }
}

/**
 * The receiver of [TetherClient.sse]'s block: the client's calls, in a coroutine scope
 * (what the block starts with `launch` ends with it), Ktor's `ClientSSESession`.
 */
public class SseScope internal constructor(
    /** The client behind this block. */
    public val sse: ServerSentEvents,
    scope: CoroutineScope,
) : CoroutineScope by scope {
    public val incoming: IncomingServerSentEvents get() = sse.incoming
    public val state: StateFlow<ConnectionState> get() = sse.state
    public val events: Flow<TetherEvent> get() = sse.events

    public inline fun <reified T> deserialize(event: ServerSentEvent): T = sse.deserialize(event)
    public suspend fun awaitOpen(timeout: Duration = TetherSession.DEFAULT_OPEN_TIMEOUT): ServerSentEvents =
        sse.awaitOpen(timeout)
    public fun pause(): Unit = sse.pause()
    public fun resume(): Unit = sse.resume()
    public fun networkChanged(available: Boolean): Unit = sse.networkChanged(available)
    public fun reconnect(): Unit = sse.reconnect()
    public fun setHeader(name: String, value: String?): Unit = sse.setHeader(name, value)

    /** Stops the client; [incoming] then ends. */
    public fun close(): Unit = sse.close()
}
