package dev.tether.testkit

import dev.tether.ServerSentEvent
import dev.tether.TetherConfig
import dev.tether.testkit.internal.Guarded
import dev.tether.testkit.internal.SseNative
import dev.tether.testkit.internal.jsonObject
import dev.tether.testkit.internal.jsonString
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/**
 * A Server-Sent Events server on 127.0.0.1 for unit tests, on a free port, with its own
 * native thread (Tether's Rust test kit). It answers each request with the next [enqueue]d
 * [SseReply] (once none is left, it accepts: `200`, `text/event-stream`), records every
 * request, and hands each accepted stream to the test as a [ServerSseStream] (events,
 * comments, raw bytes, end, reset, stall). Every method is a plain blocking call from any
 * thread, in effect when it returns.
 *
 * ```
 * TetherTestSseServer().use { server ->
 *     TetherClient(TetherConfig().withSseTestTimers()).sse(server.url("/feed")) {
 *         server.awaitStream().send("hello", id = "1")
 *         assertEquals("hello", incoming.first().data)
 *     }
 * }
 * ```
 *
 * [close] stops the server and kills every connection; call it (or `use`) in each test.
 */
public class TetherTestSseServer(
    /** Serve `https://` with a certificate from a CA made now ([caPem]). */
    public val tls: Boolean = false,
) : AutoCloseable {
    private val handle = Guarded(SseNative.start(tls), SseNative::free)
    private val handedOut = mutableListOf<ServerSseStream>()

    /** The server's port on 127.0.0.1. */
    public val port: Int = handle.use { SseNative.port(it) }

    /** A TLS server's CA certificate (PEM), for `TetherConfig.tls { extraCaPem = … }`; null without [tls]. */
    public val caPem: String? = handle.use { SseNative.caPem(it) }

    /** `http://127.0.0.1:PORT` + [path], or `https://localhost:PORT` + [path] with [tls]. */
    public fun url(path: String = "/"): String =
        if (tls) "https://localhost:$port$path" else "http://127.0.0.1:$port$path"

    /** Queues the answer to a coming request (first queued, first used). */
    public fun enqueue(reply: SseReply): Unit =
        handle.use { SseNative.control(it, SseNative.PUSH_REPLY, reply.toJson()) }

    /** Replaces the network conditions of every connection, current and new. */
    public fun setNetwork(network: NetworkConditions): Unit =
        handle.use { SseNative.control(it, SseNative.SET_NETWORK, network.toJson()) }

    /** Lifts every network condition. */
    public fun liftNetwork(): Unit = setNetwork(NetworkConditions())

    /** Like a server restart: kills every connection, then listens again on the same port. */
    public fun restart(): Unit = handle.use { SseNative.control(it, SseNative.RESTART, null) }

    /** Kills every connection (no last chunk: like a crash) and keeps listening. */
    public fun killConnections(): Unit = handle.use { SseNative.control(it, SseNative.KILL_CONNECTIONS, null) }

    /** The next request not taken yet, or null after [timeout]. */
    public fun pollRequest(timeout: Duration = DEFAULT_TIMEOUT): RecordedRequest? = handle.use { raw ->
        SseNative.awaitRequest(raw, timeout.inWholeMilliseconds)?.let { f ->
            val headers = (3 until f.size step 2).map { f[it] to f[it + 1] }
            RecordedRequest(f[0].toLong(), f[1], f[2], headers)
        }
    }

    /** The next request not taken yet (e.g. its `Last-Event-ID`); fails the test after [timeout]. */
    public fun awaitRequest(timeout: Duration = DEFAULT_TIMEOUT): RecordedRequest =
        pollRequest(timeout) ?: throw AssertionError("no SSE request within $timeout")

    /** The next accepted stream not taken yet, or null after [timeout]. The server frees it on [close]. */
    public fun pollStream(timeout: Duration = DEFAULT_TIMEOUT): ServerSseStream? {
        val raw = handle.use { SseNative.awaitStream(it, timeout.inWholeMilliseconds) }
        if (raw == 0L) return null
        val stream = ServerSseStream(Guarded(raw, SseNative::streamFree))
        synchronized(handedOut) { handedOut += stream }
        return stream
    }

    /** The next accepted stream not taken yet; fails the test after [timeout]. */
    public fun awaitStream(timeout: Duration = DEFAULT_TIMEOUT): ServerSseStream =
        pollStream(timeout) ?: throw AssertionError("no SSE stream within $timeout")

    /** Stops the server: kills every connection, frees the native server. Idempotent. */
    override fun close() {
        synchronized(handedOut) { handedOut.forEach { it.release() } }
        handle.free()
    }

    public companion object {
        /** How long the awaits wait unless told otherwise. */
        public val DEFAULT_TIMEOUT: Duration = 10.seconds
    }
}

/** The server's answer to one request, queued with [TetherTestSseServer.enqueue]. */
public sealed class SseReply {
    internal abstract fun toJson(): String

    /** `200 OK`, `text/event-stream`, a stream that stays open, with extra [headers]. */
    public data class Accept(val headers: Map<String, String> = emptyMap()) : SseReply() {
        override fun toJson(): String = """{"accept":{"headers":${jsonObject(headers)}}}"""
    }

    /**
     * Another answer, then the connection closes: e.g. `Refuse(503, mapOf("Retry-After" to
     * "1"))` (retried), `Refuse(204)` (ends the client for good), `Refuse(404)` (an error,
     * not retried).
     */
    public data class Refuse(
        val status: Int,
        val headers: Map<String, String> = emptyMap(),
        val body: String = "",
    ) : SseReply() {
        override fun toJson(): String =
            """{"refuse":{"status":$status,"headers":${jsonObject(headers)},"body":${jsonString(body)}}}"""
    }

    /** `200 OK` with [contentType] instead of `text/event-stream` (an error, not retried). */
    public data class WrongContentType(val contentType: String = "text/html") : SseReply() {
        override fun toJson(): String = """{"wrong_content_type":{"content_type":${jsonString(contentType)}}}"""
    }

    /** Reads the request, then resets the connection (RST). */
    public data object Reset : SseReply() {
        override fun toJson(): String = "\"reset\""
    }
}

/**
 * The server side of one open event stream. Commands are written in order and return at
 * once; each returns false when the stream was already gone (nothing was done).
 */
public class ServerSseStream internal constructor(private val handle: Guarded) {
    /** The stream's id (from 1, in accept order; [RecordedRequest.connection] of its request). */
    public val id: Long = handle.use { SseNative.streamId(it) }

    private fun command(op: Int, text: String? = null, data: ByteArray? = null, n: Long = 0): Boolean =
        handle.use { SseNative.streamCommand(it, op, text, data, n) }

    /** Whether the stream still runs (the client has not hung up; not ended, reset or killed). */
    public val isOpen: Boolean get() = command(SseNative.IS_OPEN)

    /**
     * Sends one event: [data] (one `data:` line per line), [id] (`""`: an empty `id:`, which
     * resets the client's last event id), [type] (`event:`; null: the client's "message"),
     * [retry] (`retry:`, the client's reconnection delay from then on). A line break in [id]
     * or [type] throws IllegalArgumentException.
     */
    public fun send(data: String, id: String? = null, type: String? = null, retry: Duration? = null): Boolean {
        val fields = buildList {
            add(""""data":${jsonString(data)}""")
            id?.let { add(""""id":${jsonString(it)}""") }
            type?.let { add(""""event":${jsonString(it)}""") }
            retry?.let { add(""""retry_ms":${it.inWholeMilliseconds}""") }
        }
        return command(SseNative.EVENT, text = fields.joinToString(",", "{", "}"))
    }

    /** Sends [event] as the client would read it back, with an optional [retry]. */
    public fun send(event: ServerSentEvent, retry: Duration? = null): Boolean =
        send(event.data, event.id, event.type.takeIf { it != "message" }, retry)

    /** A comment (`: text`): clients ignore it; it keeps a stream alive. */
    public fun comment(text: String): Boolean = command(SseNative.COMMENT, text = text)

    /** Any bytes into the body as they are (half an event, bad UTF-8, unknown fields). */
    public fun sendRaw(bytes: ByteArray): Boolean = command(SseNative.RAW, data = bytes)

    /** Ends the stream cleanly (the last chunk, then FIN): the client reconnects with `Last-Event-ID`. */
    public fun end(): Boolean = command(SseNative.END)

    /** Resets the connection (RST). */
    public fun reset(): Boolean = command(SseNative.RESET)

    /**
     * With true, the server stops writing on this stream and keeps it open (what is sent from
     * then on is held: the client's read timeout must notice); with false, what was held goes
     * out, in order.
     */
    public fun setStall(stall: Boolean): Boolean = command(SseNative.STALL, n = if (stall) 1 else 0)

    internal fun release() = handle.free()

    override fun toString(): String = "ServerSseStream($id)"
}

/**
 * [withTestTimers] for Server-Sent Events clients (which refuse the WebSocket-only ping and
 * close timers): reconnects start after 10 ms and back off to at most 100 ms without jitter,
 * a silent request gives up after 1 s. A `Retry-After` from the server still wins. Set a
 * short `readTimeout` in `connectSse`/`sse`'s block to find stalled streams quickly.
 * Returns this config, for chaining: `TetherClient(TetherConfig().withSseTestTimers())`.
 */
public fun TetherConfig.withSseTestTimers(): TetherConfig = apply {
    connectTimeout = 1.seconds
    reconnect {
        initialDelay = 10.milliseconds
        maxDelay = 100.milliseconds
        jitter = 0.0
    }
}
