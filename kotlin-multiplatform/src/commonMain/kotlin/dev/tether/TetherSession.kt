package dev.tether

import dev.tether.internal.SessionCore
import dev.tether.internal.keepAlive
import kotlin.math.min
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.ExperimentalForInheritanceCoroutinesApi
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.FlowCollector
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.emitAll
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.receiveAsFlow
import kotlinx.serialization.KSerializer
import kotlinx.serialization.serializer

/**
 * One logical WebSocket connection that Tether keeps up: it reconnects with backoff after
 * ends the app did not ask for, queues what is sent while offline, and reports everything
 * as [state], [incoming] and [events].
 *
 * Thread-safe: any thread or coroutine may send or close. [close] (or cancelling the scope
 * given to [TetherClient.connect]) ends it and frees its native client; a session the app
 * forgot is closed and freed once it becomes unreachable.
 */
public class TetherSession internal constructor(
    /** The URL given to [TetherClient.connect]. */
    public val url: String,
    internal val core: SessionCore,
) : AutoCloseable {
    /** Connecting → Open → (Reconnecting → Open)* → Closing → Closed. */
    public val state: StateFlow<ConnectionState> = OwnedStateFlow(this, core.state)

    /**
     * Received messages, in order, across reconnections; completes when the session has
     * ended (see [IncomingFrames]; [IncomingFrames.deserialized] decodes typed messages).
     */
    public val incoming: IncomingFrames = IncomingFrames(this, core)

    /**
     * Opens, closes, scheduled retries and errors, in order; completes after
     * [TetherEvent.Terminated]. Nobody has to collect it: it buffers the latest 256 events,
     * and when nobody collects, older ones are dropped (never frames, never [state]).
     */
    public val events: Flow<TetherEvent> = flow {
        try {
            emitAll(core.events.receiveAsFlow())
        } finally {
            keepAlive(this@TetherSession)
        }
    }

    /**
     * Suspends until the session is open, and returns it: `client.connect(url).awaitOpen()`.
     *
     * Throws, as soon as an attempt has failed since the last open (also one that failed
     * before this call), that attempt's [TetherError]: [TetherError.ConnectFailed] for a
     * server that is down, [TetherError.HttpStatus] for a refused upgrade, and so on. The
     * session is not closed by it: it goes on reconnecting (so a later `awaitOpen` waits
     * for the next attempt's outcome), or is closed by the app; [TetherClient.webSocketSession]
     * closes it for you. Throws [TetherError.Closed] when the session ended, and
     * [TetherError.ConnectTimeout] when [timeout] passes first.
     */
    public suspend fun awaitOpen(timeout: Duration = DEFAULT_OPEN_TIMEOUT): TetherSession {
        core.awaitOpen(timeout)
        keepAlive(this)
        return this
    }

    /** The subprotocol the server chose at the last open, if any. */
    public val protocol: String? get() = core.protocol

    /**
     * Queues a text message, waiting while the outgoing queue is full. With an outbox
     * ([TetherConfig.outbox]) it returns once the message is stored in the outbox's file.
     * Throws [TetherError.Closed] after [close].
     */
    public suspend fun send(text: String) {
        // The common case first, in a method small enough for the JIT's first tier (C1
        // gives up on the waiting loop's bytecode, so it ran interpreted until C2 came).
        if (core.client.sendText(text)) return
        sendWaiting { core.client.sendText(text) }
    }

    /** Queues a binary message (copied), waiting while the outgoing queue is full. */
    public suspend fun send(data: ByteArray) {
        if (core.client.sendBinary(data)) return
        sendWaiting { core.client.sendBinary(data) }
    }

    /** Queues [frame] as [send] does. */
    public suspend fun send(frame: Frame) {
        when (frame) {
            is Frame.Text -> send(frame.text)
            is Frame.Binary -> send(frame.data)
        }
    }

    /**
     * Sends [value] as one frame made by [TetherConfig.contentConverter] (JSON: a text frame;
     * ProtoBuf, CBOR: a binary frame), as [send] does. Throws [TetherError.InvalidArgument]
     * when no converter is set.
     */
    public suspend inline fun <reified T> sendSerialized(value: T): Unit = sendSerialized(serializer<T>(), value)

    /** As [sendSerialized], with an explicit [serializer]. */
    public suspend fun <T> sendSerialized(serializer: KSerializer<T>, value: T) {
        send(core.converter().serialize(serializer, value))
    }

    /**
     * The next received frame, decoded as a [T] with [TetherConfig.contentConverter]. A frame
     * that does not decode throws [TetherDeserializeException] (holding the frame): the
     * session goes on, and the next call takes the next frame. Throws
     * [TetherError.Closed] once the session has ended.
     */
    public suspend inline fun <reified T> receiveDeserialized(): T = receiveDeserialized(serializer<T>())

    /** As [receiveDeserialized], with an explicit [serializer]. */
    public suspend fun <T> receiveDeserialized(serializer: KSerializer<T>): T {
        val converter = core.converter()
        val frame = core.frames.receiveOrNull(rethrow = false)
            ?: throw TetherError.Closed("the session has ended: no more frames")
        keepAlive(this)
        return when (val decoded = IncomingFrames.decode(converter, serializer, frame)) {
            is Decoded.Value -> decoded.value
            is Decoded.Failure -> throw decoded.error
        }
    }

    /**
     * Stores a tracked text message in the outbox ([TetherConfig.outbox]) and returns its id.
     * It goes out like [send] and stays in the outbox until [ack]: it is sent again after
     * every reconnect, and by a session reopened on the same file, until then (at-least-once,
     * in its original order; [TetherEvent.Resent] names the ids sent again). Ids grow, across
     * restarts too, so that a server can drop duplicates. Waits while the outbox is full
     * (tracked messages leave it only when acked). Throws [TetherError.InvalidArgument]
     * without an outbox, [TetherError.Closed] after [close].
     */
    public suspend fun sendTracked(text: String): Long = sendTrackedWaiting { core.client.sendTrackedText(text) }

    /** Stores a tracked binary message (copied) in the outbox, as [sendTracked] does; returns its id. */
    public suspend fun sendTracked(data: ByteArray): Long = sendTrackedWaiting { core.client.sendTrackedBinary(data) }

    /** Stores [frame] as a tracked message, as [sendTracked] does; returns its id. */
    public suspend fun sendTracked(frame: Frame): Long = when (frame) {
        is Frame.Text -> sendTracked(frame.text)
        is Frame.Binary -> sendTracked(frame.data)
    }

    /**
     * The server confirmed the tracked message [id] ([sendTracked]): it leaves the outbox
     * and is not sent again. Throws [TetherError.InvalidArgument] for an id that is not
     * pending (never tracked, or acked already) or without an outbox.
     */
    public fun ack(id: Long): Unit = core.client.ack(id)

    /**
     * Messages in the outbox: sent ones the server has not provably read yet, and tracked
     * ones not acked. Throws [TetherError.InvalidArgument] without an outbox.
     */
    public fun pendingOutbox(): Long = core.client.outboxPending()

    /**
     * Queues a text message if the outgoing queue has room. Returns false when it is full or
     * the session is closed: nothing was taken.
     */
    public fun trySend(text: String): Boolean = orFalseWhenClosed { core.client.sendText(text) }

    /** Queues a binary message (copied) if the outgoing queue has room; false otherwise. */
    public fun trySend(data: ByteArray): Boolean = orFalseWhenClosed { core.client.sendBinary(data) }

    /**
     * Closes for good: queued messages go out first, then a Close frame with [code] (1000,
     * 1001, 1002, 1003, 1007-1014 or 3000-4999) and [reason] (≤ 123 UTF-8 bytes). Returns at
     * once; [state] then reaches [ConnectionState.Closed] and [incoming] completes. Frames
     * that arrive meanwhile are still delivered, but those nobody takes within a second of
     * the close are dropped so that the session can end. Calling it again does nothing. A
     * bad code throws [TetherError.InvalidArgument].
     */
    public fun close(code: Int, reason: String = "") {
        core.close(code, reason)
    }

    /** Closes normally (1000). */
    override fun close() {
        close(NORMAL_CLOSURE)
    }

    /**
     * Suspends until the session has ended (after [close], or a final error) and its native
     * client has been freed: a new session may then open the same outbox file.
     */
    public suspend fun awaitClosed() {
        core.job.join()
        keepAlive(this)
    }

    /** The app went to the background: close politely and do not reconnect until [resume]. Sends still queue. */
    public fun pause(): Unit = core.client.pause()

    /** Ends a pause, or cuts a backoff wait short: connect now. */
    public fun resume(): Unit = core.client.resume()

    /** Network hint from the OS: when it returns, retry at once; while it is gone, do not try. */
    public fun networkChanged(available: Boolean): Unit = core.client.networkChanged(available)

    /** Drops the current connection (if any) and connects again now, e.g. after [setHeader]. */
    public fun reconnect(): Unit = core.client.reconnect()

    /** With [QueueFlush.MANUAL]: lets the backlog held since the last open go out. */
    public fun flush(): Unit = core.client.flush()

    /** Sets, or with `null` removes, a header of the next handshakes (e.g. a refreshed token). */
    public fun setHeader(name: String, value: String?): Unit = core.client.setHeader(name, value)

    /** A snapshot of the session's counters. */
    public fun stats(): TetherStats = core.client.stats()

    override fun toString(): String = "TetherSession($url, ${state.value})"

    /** Sends with [attempt] once it is taken, the first try having found no room. Not inline: see [send]. */
    private suspend fun sendWaiting(attempt: () -> Boolean) {
        if (attempt()) return
        if (core.hasOutbox) {
            // The outbox has room once the server has read or acked messages, which the
            // core does not signal: retry with a short backoff.
            var wait = 1L
            while (!attempt()) {
                delay(wait)
                wait = min(wait * 2, MAX_SEND_WAIT_MS)
            }
            return
        }
        // The queue is full: ask the core for a room notice, try again (room made in
        // between is not missed), and sleep until the notice if it is still full.
        for (round in 0 until Int.MAX_VALUE) {
            val seen = core.room.value
            core.watchRoom()
            if (attempt()) return
            core.room.first { it != seen }
        }
    }

    private suspend inline fun sendTrackedWaiting(attempt: () -> Long?): Long {
        var wait = 1L
        while (true) {
            attempt()?.let { return it }
            // The outbox is full: it drains as messages are read by the server, or acked.
            delay(wait)
            wait = min(wait * 2, MAX_SEND_WAIT_MS)
        }
    }

    private inline fun orFalseWhenClosed(attempt: () -> Boolean): Boolean = try {
        attempt()
    } catch (e: TetherError.Closed) {
        false
    }

    internal companion object {
        /** What [awaitOpen] waits by default: the core's default connect timeout. */
        val DEFAULT_OPEN_TIMEOUT: Duration = 10.seconds
        const val NORMAL_CLOSURE = 1000
        const val MAX_SEND_WAIT_MS = 50L
    }
}

/** A [StateFlow] that keeps [owner] reachable while it is held or collected. */
@OptIn(ExperimentalForInheritanceCoroutinesApi::class)
internal class OwnedStateFlow<T>(private val owner: Any, private val delegate: StateFlow<T>) : StateFlow<T> {
    override val value: T get() = delegate.value
    override val replayCache: List<T> get() = delegate.replayCache

    override suspend fun collect(collector: FlowCollector<T>): Nothing {
        try {
            delegate.collect(collector)
        } finally {
            keepAlive(owner)
        }
    }
}
