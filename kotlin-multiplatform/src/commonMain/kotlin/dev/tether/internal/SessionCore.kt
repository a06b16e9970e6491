package dev.tether.internal

import dev.tether.ConnectionState
import dev.tether.Frame
import dev.tether.TetherConfig
import dev.tether.TetherError
import dev.tether.TetherEvent
import dev.tether.WebsocketContentConverter
import kotlin.concurrent.Volatile
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.ComparableTimeMark
import kotlin.time.TimeSource
import kotlinx.coroutines.CompletableJob
import kotlinx.coroutines.ExperimentalCoroutinesApi
import kotlinx.coroutines.Job
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.SendChannel
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.combine
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.selects.onTimeout
import kotlinx.coroutines.selects.select
import kotlinx.coroutines.withTimeoutOrNull

/**
 * The state of one session that the poller, the app and the cleanup share. It never
 * references the public [dev.tether.TetherSession], so that a session the app forgot can
 * become unreachable (and be cleaned up) while its poller still runs.
 */
internal class SessionCore(
    config: TetherConfig,
    parent: Job?,
    private val clock: TimeSource.WithComparableMarks = TimeSource.Monotonic,
) : EventSink {
    /**
     * Completes when the native client has terminated and been freed (so that a new session
     * may take its outbox file); cancelled with the session's scope.
     */
    val job: CompletableJob = Job(parent)
    val frames = FrameBuffer(config.incomingBuffer.coerceAtLeast(1), Poller::signalOnPollerThread)
    private val contentConverter = config.contentConverter
    val events = Channel<TetherEvent>(EVENT_BUFFER, BufferOverflow.DROP_OLDEST)
    val state = MutableStateFlow<ConnectionState>(ConnectionState.Connecting)

    /** Bumped each time the core says the outgoing queue has room (and at the end). */
    val room = MutableStateFlow(0L)

    /** Whether sends go through the durable outbox (whose room is not the queue's). */
    val hasOutbox: Boolean = config.outboxPath() != null

    /** The last failed attempt since the last open (or the start): what [awaitOpen] throws. */
    private val failureSinceOpen = MutableStateFlow<NativeEvent.Error?>(null)

    @Volatile
    var protocol: String? = null
        private set

    @Volatile
    private var native: NativeClient? = null

    /** The app gave the session up (scope cancelled, or it became unreachable). */
    @Volatile
    private var abandoned = false

    @Volatile
    private var closeAskedAt: ComparableTimeMark? = null

    @Volatile
    private var terminated = false

    fun attach(client: NativeClient) {
        native = client
        // A cancelled scope ends the session: close politely, stop delivering.
        job.invokeOnCompletion { cause -> if (cause != null) abandon() }
    }

    val client: NativeClient
        get() = native ?: throw TetherError.Closed("the session is not connected")

    /** The converter of typed messages; throws when the config has none. */
    fun converter(): WebsocketContentConverter = contentConverter
        ?: throw TetherError.InvalidArgument("no contentConverter is set: TetherClient { contentConverter = KotlinxWebsocketSerializationConverter(Json) }")

    /** Starts the close handshake; a second call, or one after the end, does nothing. */
    fun close(code: Int, reason: String) {
        if (closeAskedAt != null || terminated) return
        try {
            client.close(code, reason)
        } catch (e: TetherError.Closed) {
            // Closed already, or ended on its own: nothing to do.
        }
        closeAskedAt = clock.markNow()
        // A drain waiting for the app's room now waits in slices, to drop after CLOSE_DRAIN.
        frames.wakeDrain()
    }

    /** Ends the session for an app that no longer listens: close politely (1001), drop what comes. */
    fun abandon() {
        if (terminated) return
        abandoned = true
        try {
            native?.close(GOING_AWAY, "")
        } catch (e: TetherError) {
            // Closed or freed already.
        }
        frames.cancel()
    }

    override suspend fun deliver(event: NativeEvent) {
        when (event) {
            is NativeEvent.Text -> offer(Frame.Text(event.text))
            is NativeEvent.Binary -> offer(Frame.Binary(event.data))
            else -> apply(event)
        }
    }

    override fun tryDeliver(event: NativeEvent): Boolean {
        val frame = when (event) {
            is NativeEvent.Text -> Frame.Text(event.text)
            is NativeEvent.Binary -> Frame.Binary(event.data)
            else -> {
                apply(event)
                return true
            }
        }
        if (abandoned) return true
        return frames.trySend(frame)
    }

    /** Every event but a frame: none of them waits. */
    private fun apply(event: NativeEvent) {
        when (event) {
            is NativeEvent.State -> state.value = when (event.state) {
                Codes.WS_STATE_OPEN -> ConnectionState.Open.also { failureSinceOpen.value = null }
                Codes.WS_STATE_CONNECTING -> ConnectionState.Connecting
                // Followed at once by a Reconnecting event with the attempt and delay,
                // unless paused or offline: then no attempt is scheduled.
                Codes.WS_STATE_RECONNECTING -> ConnectionState.Reconnecting(0, Duration.INFINITE)
                Codes.WS_STATE_CLOSING -> ConnectionState.Closing
                Codes.WS_STATE_CLOSED -> ConnectionState.Closed
                else -> state.value // a state this version does not know: keep the last one
            }
            is NativeEvent.Open -> {
                protocol = event.protocol
                events.trySend(TetherEvent.Opened(event.protocol))
            }
            is NativeEvent.Text, is NativeEvent.Binary -> error("frames go through offer")
            is NativeEvent.Closed -> events.trySend(TetherEvent.Closed(event.code, event.reason))
            is NativeEvent.Reconnecting -> {
                val delay = event.delayMs.milliseconds
                state.value = ConnectionState.Reconnecting(event.attempt, delay)
                events.trySend(TetherEvent.Reconnecting(event.attempt, delay))
            }
            is NativeEvent.Error -> {
                if (event.code != Codes.WS_ERROR_MESSAGE_DROPPED && event.code != Codes.WS_ERROR_UNSENT) {
                    failureSinceOpen.value = event
                }
                events.trySend(TetherEvent.Failed(TetherError.of(event.code, event.message)))
            }
            is NativeEvent.Resent -> events.trySend(TetherEvent.Resent(event.ids.toList()))
            // Only Socket.IO clients ([SocketIoCore]) and SSE clients ([SseCore]) get these.
            is NativeEvent.SocketIo, is NativeEvent.ServerSent -> {}
            NativeEvent.Terminated -> finish()
        }
    }

    /**
     * Returns once [state] is Open. Throws the error of the last failed attempt since the
     * last open as soon as there is one (at once if it came before this call),
     * [TetherError.Closed] when the session ended without one, and
     * [TetherError.ConnectTimeout] when [timeout] passes first.
     */
    suspend fun awaitOpen(timeout: Duration) {
        val outcome = withTimeoutOrNull(timeout) {
            combine(state, failureSinceOpen) { s, f -> s to f }
                .first { (s, f) -> s == ConnectionState.Open || s == ConnectionState.Closed || f != null }
        } ?: throw TetherError.ConnectTimeout("the session did not open within $timeout")
        val (reached, failure) = outcome
        when {
            reached == ConnectionState.Open -> return
            failure != null -> throw TetherError.of(failure.code, failure.message)
            else -> throw TetherError.Closed("the session ended before it opened")
        }
    }

    /**
     * Hands a frame to [frames], waiting while it is full (the core then stops reading the
     * socket: nothing is dropped) until the app has taken half of it. An abandon (which
     * cancels [frames]) and a close wake it; after a close it waits in slices, and frames
     * nobody takes within [CLOSE_DRAIN] are dropped so that the native client can still
     * end and be freed.
     */
    private suspend fun offer(frame: Frame) {
        while (true) {
            // Taken, or dropped because nobody takes frames any more.
            if (abandoned || frames.trySend(frame)) return
            val asked = closeAskedAt
            if (asked != null && asked.elapsedNow() > CLOSE_DRAIN) return
            // Until the app takes frames; in slices once a close was asked (close wakes it).
            // A local, not an argument expression: a value of two branches on the stack at a
            // suspension made C1 give up on the method ("block join failed").
            val timeout = if (asked != null) SLICE else null
            frames.awaitRoom(timeout)
        }
    }

    private fun finish() {
        terminated = true
        state.value = ConnectionState.Closed
        events.trySend(TetherEvent.Terminated)
        events.close()
        frames.close()
        roomMade()
    }

    override fun roomMade() {
        room.update { it + 1 }
    }

    /** Asks the core for a [roomMade] once the outgoing queue has room again. */
    fun watchRoom() {
        val client = native as? GuardedClient ?: return
        try {
            Poller.watchRoom(client)
        } catch (e: TetherError) {
            // Ended or released: the send that asked finds out on its next attempt.
        }
    }

    override fun released() {
        job.complete()
    }

    internal companion object {
        const val EVENT_BUFFER = 256
        const val GOING_AWAY = 1001
        val SLICE = 100.milliseconds

        /** After a close, frames nobody takes within this are dropped. */
        val CLOSE_DRAIN = 1.seconds
    }
}

/** Keeps [owner] reachable up to this call (the session while its flows are collected). */
@Suppress("UNUSED_PARAMETER")
internal fun keepAlive(owner: Any) {
}

/**
 * Sends [element] if the channel takes it within [timeout]; true when it did. A select, not
 * `withTimeoutOrNull { send(element) }`: there a timeout that races a send which already
 * happened reports it unsent (prompt cancellation), and the caller's retry delivers the
 * element twice (seen as a duplicated frame at the incoming buffer's boundary).
 */
@OptIn(ExperimentalCoroutinesApi::class)
internal suspend fun <E> SendChannel<E>.sendWithin(element: E, timeout: Duration): Boolean = select {
    onSend(element) { true }
    onTimeout(timeout) { false }
}
