package dev.tether

import dev.tether.internal.GuardedClient
import dev.tether.internal.Poller
import dev.tether.internal.SessionCore
import dev.tether.internal.SocketIoCore
import dev.tether.internal.SseCore
import dev.tether.internal.platformBinding
import kotlin.time.Duration
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.StateFlow

/**
 * Opens Tether sessions with one configuration. Cheap: all connections share the core's
 * runtime thread.
 *
 * ```
 * val client = TetherClient { pingInterval = 15.seconds }
 * client.webSocket("wss://example.com/chat") {
 *     send("hello")
 *     incoming.collect { frame -> println(frame) }
 * }
 * ```
 */
public class TetherClient(config: TetherConfig = TetherConfig()) : AutoCloseable {
    private val config = config.copy()
    private val job = SupervisorJob()

    /**
     * Opens a session for [url] (`ws://` or `wss://`) and starts connecting; returns at once.
     * The session belongs to [scope] when given (cancelling it closes the session), else to
     * this client ([close] closes it). Throws [TetherError.InvalidArgument] for a bad URL or
     * a bad option.
     */
    public fun connect(url: String, scope: CoroutineScope? = null): TetherSession {
        val optionsJson = config.toJson()
        val parent = scope?.coroutineContext?.get(Job) ?: job
        val core = SessionCore(config, parent)
        val binding = platformBinding()
        val raw = try {
            binding.connect(url, optionsJson)
        } catch (e: Throwable) {
            core.job.cancel()
            throw e
        }
        val native = GuardedClient(raw, core::released)
        core.attach(native)
        try {
            Poller.serve(native, core)
        } catch (e: Throwable) {
            core.abandon()
            native.destroy()
            throw e
        }
        val session = TetherSession(url, core)
        // The action must not capture `session`, or it would never become unreachable.
        binding.onUnreachable(session) { core.abandon() }
        return session
    }

    /**
     * Ktor's `webSocketSession`: connects to [url] and suspends until the session is open
     * ([TetherSession.awaitOpen]). When it does not open (the server is down, refuses the
     * upgrade, or [timeout] passes), the session is closed and the error thrown: nothing
     * keeps reconnecting behind the app's back. Once open, the session reconnects as
     * configured. Ownership as in [connect].
     */
    public suspend fun webSocketSession(
        url: String,
        timeout: Duration = TetherSession.DEFAULT_OPEN_TIMEOUT,
        scope: CoroutineScope? = null,
    ): TetherSession {
        val session = connect(url, scope)
        try {
            return session.awaitOpen(timeout)
        } catch (e: Throwable) {
            session.close(GOING_AWAY)
            throw e
        }
    }

    /**
     * Ktor-shaped: connects to [url], runs [block] with the session as receiver, then closes
     * normally and waits for the close to finish. Cancelling the caller, or an exception in
     * [block], closes the session (1001).
     */
    public suspend fun <T> webSocket(url: String, block: suspend WebSocketScope.() -> T): T = coroutineScope {
        val session = connect(url, this)
        val result = WebSocketScope(session, this).block()
        session.close()
        result
    }

    /**
     * Opens a Socket.IO client for [url] (`http://` or `https://`, no path) with this
     * client's configuration plus [configure]'s, joins `/` and starts connecting; returns at
     * once. Ownership as in [connect]. Throws [TetherError.InvalidArgument] for a bad URL or
     * option.
     */
    public fun connectSocketIo(
        url: String,
        scope: CoroutineScope? = null,
        configure: SocketIoConfig.() -> Unit = {},
    ): SocketIo {
        val sio = SocketIoConfig().apply(configure)
        val optionsJson = sio.withInto(config.toJson())
        val parent = scope?.coroutineContext?.get(Job) ?: job
        val core = SocketIoCore(parent, sio.ackTimeout ?: DEFAULT_ACK_TIMEOUT)
        val binding = platformBinding()
        val raw = try {
            binding.connectSocketIo(url, optionsJson)
        } catch (e: Throwable) {
            core.job.cancel()
            throw e
        }
        val native = GuardedClient(raw, core::released)
        core.attach(native)
        try {
            Poller.serve(native, core)
        } catch (e: Throwable) {
            core.close()
            native.destroy()
            throw e
        }
        val io = SocketIo(url, core)
        binding.onUnreachable(io) { core.close() }
        return io
    }

    /**
     * Ktor-shaped: connects a Socket.IO client to [url], waits until `/` is connected, runs
     * [block] with it as receiver, then closes and waits for the end. Cancelling the caller,
     * or an exception in [block], closes it.
     */
    public suspend fun <T> socketIo(
        url: String,
        configure: SocketIoConfig.() -> Unit = {},
        block: suspend SocketIoScope.() -> T,
    ): T = coroutineScope {
        val io = connectSocketIo(url, this, configure)
        try {
            io.awaitConnected()
            val result = SocketIoScope(io, this).block()
            io.close()
            io.awaitClosed()
            result
        } finally {
            io.close()
        }
    }

    /**
     * Opens a Server-Sent Events client for [url] (`http://` or `https://`) with this
     * client's configuration plus [configure]'s, and starts connecting; returns at once.
     * Ownership as in [connect]. Throws [TetherError.InvalidArgument] for a bad URL or option
     * (WebSocket-only options included).
     */
    public fun connectSse(
        url: String,
        scope: CoroutineScope? = null,
        configure: SseConfig.() -> Unit = {},
    ): ServerSentEvents {
        val optionsJson = SseConfig().apply(configure).withInto(config.toJson())
        val parent = scope?.coroutineContext?.get(Job) ?: job
        val core = SseCore(config, parent)
        val binding = platformBinding()
        val raw = try {
            binding.connectSse(url, optionsJson)
        } catch (e: Throwable) {
            core.job.cancel()
            throw e
        }
        val native = GuardedClient(raw, core::released)
        core.attach(native)
        try {
            Poller.serve(native, core)
        } catch (e: Throwable) {
            core.abandon()
            native.destroy()
            throw e
        }
        val sse = ServerSentEvents(url, core)
        // The action must not capture `sse`, or it would never become unreachable.
        binding.onUnreachable(sse) { core.abandon() }
        return sse
    }

    /**
     * Ktor-shaped (`client.sse(url) { for (event in incoming) … }`): connects to [url], runs
     * [block] with the client as receiver, then closes and waits until the native client is
     * released. `incoming` ends when the client ends (a 204, an error that is not retried,
     * [SseScope.close]); [SseScope.awaitOpen] throws the error that ended it. Cancelling the
     * caller, or an exception in [block], closes it.
     */
    public suspend fun <T> sse(
        url: String,
        configure: SseConfig.() -> Unit = {},
        block: suspend SseScope.() -> T,
    ): T = coroutineScope {
        val sse = connectSse(url, this, configure)
        try {
            val result = SseScope(sse, this).block()
            sse.close()
            sse.awaitClosed()
            result
        } finally {
            sse.close()
        }
    }

    /** Closes (1001) every session opened without a scope of its own. */
    override fun close() {
        job.cancel()
    }

    public companion object {
        private const val GOING_AWAY = 1001
        private val DEFAULT_ACK_TIMEOUT: Duration = kotlin.time.Duration.parse("10s")

        /** Native clients alive in this process: what a leak check compares. */
        public fun liveNativeClients(): Long = platformBinding().liveClients()
    }
}

/** Builds a [TetherClient] with the options DSL. */
public fun TetherClient(configure: TetherConfig.() -> Unit): TetherClient =
    TetherClient(TetherConfig().apply(configure))

/** The receiver of [TetherClient.webSocket]: a session plus the block's scope, Ktor style. */
public class WebSocketScope internal constructor(
    /** The session behind this block. */
    public val session: TetherSession,
    scope: CoroutineScope,
) : CoroutineScope by scope {
    /** Received frames, the same [Flow] as [TetherSession.incoming]; it completes when the session has ended. */
    public val incoming: IncomingFrames get() = session.incoming

    public val state: StateFlow<ConnectionState> get() = session.state
    public val events: Flow<TetherEvent> get() = session.events

    public suspend fun send(text: String): Unit = session.send(text)
    public suspend fun send(data: ByteArray): Unit = session.send(data)
    public suspend fun send(frame: Frame): Unit = session.send(frame)
    public fun trySend(text: String): Boolean = session.trySend(text)
    public fun trySend(data: ByteArray): Boolean = session.trySend(data)
    public suspend fun sendTracked(text: String): Long = session.sendTracked(text)
    public suspend fun sendTracked(data: ByteArray): Long = session.sendTracked(data)
    public suspend fun sendTracked(frame: Frame): Long = session.sendTracked(frame)
    public fun ack(id: Long): Unit = session.ack(id)
    public suspend inline fun <reified T> sendSerialized(value: T): Unit = session.sendSerialized(value)
    public suspend inline fun <reified T> receiveDeserialized(): T = session.receiveDeserialized()
    public fun pendingOutbox(): Long = session.pendingOutbox()

    /** See [TetherSession.awaitOpen]. */
    public suspend fun awaitOpen(timeout: Duration = TetherSession.DEFAULT_OPEN_TIMEOUT): TetherSession =
        session.awaitOpen(timeout)

    /** Closes the session (see [TetherSession.close]); [incoming] then completes. */
    public fun close(code: Int = 1000, reason: String = ""): Unit = session.close(code, reason)
}
