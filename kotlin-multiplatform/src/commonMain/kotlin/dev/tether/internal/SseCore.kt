package dev.tether.internal

import dev.tether.ConnectionState
import dev.tether.ServerSentEvent
import dev.tether.TetherConfig
import dev.tether.TetherError
import dev.tether.TetherEvent
import dev.tether.WebsocketContentConverter
import kotlin.concurrent.Volatile
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlinx.coroutines.CompletableJob
import kotlinx.coroutines.Job
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.combine
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.withTimeoutOrNull

/**
 * What a Server-Sent Events client's poller, its app calls and its cleanup share. Like
 * [SessionCore], it never references the public [dev.tether.ServerSentEvents], so that a
 * client the app forgot can become unreachable (and be closed) while the poller serves it.
 */
internal class SseCore(config: TetherConfig, parent: Job?) : EventSink {
    /** Completes when the native client has terminated and been freed; cancelled with the scope. */
    val job: CompletableJob = Job(parent)
    val state = MutableStateFlow<ConnectionState>(ConnectionState.Connecting)
    val events = Channel<TetherEvent>(SessionCore.EVENT_BUFFER, BufferOverflow.DROP_OLDEST)

    /**
     * The events for the app. When it is full the drain waits, the core's unpolled bytes
     * grow, and past `max_unpolled_bytes` the core stops reading the stream: nothing is dropped.
     */
    val incoming = Channel<ServerSentEvent>(config.incomingBuffer.coerceAtLeast(1))
    private val contentConverter = config.contentConverter

    /** The last failed attempt since the last open (or the start): what [awaitOpen] throws. */
    private val failureSinceOpen = MutableStateFlow<NativeEvent.Error?>(null)

    @Volatile
    private var native: GuardedClient? = null

    /** Closed by the app, or given up (scope cancelled, unreachable): stop delivering. */
    @Volatile
    private var stopping = false

    @Volatile
    private var terminated = false

    fun attach(client: GuardedClient) {
        native = client
        job.invokeOnCompletion { cause -> if (cause != null) abandon() }
    }

    val client: GuardedClient
        get() = native ?: throw TetherError.Closed("the SSE client is not connected")

    /** The converter of typed data; throws when the config has none. */
    fun converter(): WebsocketContentConverter = contentConverter
        ?: throw TetherError.InvalidArgument("no contentConverter is set: TetherClient { contentConverter = KotlinxWebsocketSerializationConverter(Json) }")

    /** Stops the stream for good; a second call, or one after the end, does nothing. */
    fun close() {
        if (stopping || terminated) return
        stopping = true
        try {
            client.close(0, "")
        } catch (e: TetherError.Closed) {
            // Ended on its own already.
        }
    }

    /** The app gave the client up: close, and drop what comes (nobody will read it). */
    fun abandon() {
        close()
        incoming.cancel()
    }

    /** As [SessionCore.awaitOpen]. */
    suspend fun awaitOpen(timeout: Duration) {
        val outcome = withTimeoutOrNull(timeout) {
            combine(state, failureSinceOpen) { s, f -> s to f }
                .first { (s, f) -> s == ConnectionState.Open || s == ConnectionState.Closed || f != null }
        } ?: throw TetherError.ConnectTimeout("the event stream did not open within $timeout")
        val (reached, failure) = outcome
        when {
            reached == ConnectionState.Open -> return
            failure != null -> throw TetherError.of(failure.code, failure.message)
            else -> throw TetherError.Closed("the SSE client ended before the stream opened")
        }
    }

    override suspend fun deliver(event: NativeEvent) {
        if (event is NativeEvent.ServerSent) {
            offer(ServerSentEvent(event.type, event.id, event.data))
        } else {
            apply(event)
        }
    }

    /** Delivers without waiting: false, with nothing done, when [incoming] is full. */
    override fun tryDeliver(event: NativeEvent): Boolean {
        if (event !is NativeEvent.ServerSent) {
            apply(event)
            return true
        }
        if (stopping) return true
        val sent = incoming.trySend(ServerSentEvent(event.type, event.id, event.data))
        // A closed channel: nobody takes events any more, as in [offer].
        return sent.isSuccess || sent.isClosed
    }

    /** An SSE client sends nothing: no queue to make room in. */
    override fun roomMade() {}

    /** Every event but a message: none of them waits. */
    private fun apply(event: NativeEvent) {
        when (event) {
            is NativeEvent.State -> state.value = when (event.state) {
                Codes.WS_STATE_OPEN -> ConnectionState.Open.also { failureSinceOpen.value = null }
                Codes.WS_STATE_CONNECTING -> ConnectionState.Connecting
                // Followed at once by a Reconnecting event with the attempt and delay, unless
                // paused or offline (then it waits for resume or the network).
                Codes.WS_STATE_RECONNECTING -> ConnectionState.Reconnecting(0, Duration.INFINITE)
                Codes.WS_STATE_CLOSING -> ConnectionState.Closing
                Codes.WS_STATE_CLOSED -> ConnectionState.Closed
                else -> state.value
            }
            is NativeEvent.Open -> events.trySend(TetherEvent.Opened(null))
            is NativeEvent.Reconnecting -> {
                val delay = event.delayMs.milliseconds
                state.value = ConnectionState.Reconnecting(event.attempt, delay)
                events.trySend(TetherEvent.Reconnecting(event.attempt, delay))
            }
            is NativeEvent.Error -> {
                failureSinceOpen.value = event
                events.trySend(TetherEvent.Failed(TetherError.of(event.code, event.message)))
            }
            NativeEvent.Terminated -> finish()
            // Messages go through [offer]; an SSE client has none of the others.
            is NativeEvent.ServerSent, is NativeEvent.Text, is NativeEvent.Binary, is NativeEvent.Closed,
            is NativeEvent.Resent, is NativeEvent.SocketIo -> {}
        }
    }

    /**
     * Hands an event to [incoming], waiting while it is full (backpressure), in slices so
     * that a close is noticed: after it, what nobody takes is dropped, and the native client
     * can end and be freed.
     */
    private suspend fun offer(event: ServerSentEvent) {
        if (incoming.trySend(event).isSuccess) return
        for (slice in 0 until Int.MAX_VALUE) {
            if (stopping) return
            try {
                if (incoming.sendWithin(event, SessionCore.SLICE)) return
            } catch (e: Exception) {
                // The app cancelled `incoming`: nobody takes events any more.
                return
            }
        }
    }

    private fun finish() {
        terminated = true
        state.value = ConnectionState.Closed
        events.trySend(TetherEvent.Terminated)
        events.close()
        incoming.close()
    }

    override fun released() {
        job.complete()
    }
}
