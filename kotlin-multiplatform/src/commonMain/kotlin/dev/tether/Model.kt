package dev.tether

import kotlin.time.Duration

/** The state of a session, as [TetherSession.state] reports it. */
public sealed class ConnectionState {
    /** The first connection attempt is under way. */
    public data object Connecting : ConnectionState()

    /** Connected: messages flow. */
    public data object Open : ConnectionState()

    /**
     * The connection was lost (or paused); attempt number [attempt] (from 1) starts after
     * [delay]. Attempt 0 with an infinite delay: waiting for [TetherSession.resume] or the
     * network to return.
     */
    public data class Reconnecting(val attempt: Int, val delay: Duration) : ConnectionState()

    /** A close handshake is under way (asked by the app or the server). */
    public data object Closing : ConnectionState()

    /** Finished for good: no more connections, [TetherSession.incoming] has ended. */
    public data object Closed : ConnectionState()
}

/** One received message. */
public sealed class Frame {
    /** A text message. */
    public data class Text(val text: String) : Frame()

    /** A binary message. [data] belongs to the receiver: Tether keeps no reference to it. */
    public class Binary(public val data: ByteArray) : Frame() {
        override fun equals(other: Any?): Boolean = other is Binary && data.contentEquals(other.data)
        override fun hashCode(): Int = data.contentHashCode()
        override fun toString(): String = "Binary(${data.size} bytes)"
    }
}

/** What happened to a session besides its messages and state: opens, closes, retries, errors. */
public sealed class TetherEvent {
    /** A handshake completed; [protocol] is the subprotocol the server chose, if any. */
    public data class Opened(val protocol: String?) : TetherEvent()

    /** One connection ended with [code] (1006: without a close handshake) and [reason]. */
    public data class Closed(val code: Int, val reason: String) : TetherEvent()

    /** Attempt [attempt] (from 1) is scheduled after [delay]. */
    public data class Reconnecting(val attempt: Int, val delay: Duration) : TetherEvent()

    /** Something failed; the session goes on (reconnecting) unless a [Closed] state follows. */
    public data class Failed(val error: TetherError) : TetherEvent()

    /**
     * Tracked messages ([TetherSession.sendTracked]) with these [ids], oldest first, went out
     * again (after a reconnect, or on a session reopened on the same outbox file): the server
     * may see them twice, and can drop duplicates by id.
     */
    public data class Resent(val ids: List<Long>) : TetherEvent()

    /** The last event: the session has ended and its native resources are being released. */
    public data object Terminated : TetherEvent()
}

/** Counters of a session ([TetherSession.stats]). */
public data class TetherStats(
    /** Messages waiting in the outgoing queue, and their payload bytes. */
    val queuedMessages: Long,
    val queuedBytes: Long,
    /** Reconnection attempts scheduled so far. */
    val reconnects: Long,
    /** Last Ping round trip, or null before the first Pong. */
    val lastRtt: Duration?,
    /** Payload bytes received, and handed to the socket (which may have died after). */
    val bytesIn: Long,
    val bytesOut: Long,
    val messagesIn: Long,
    val messagesOut: Long,
    /** Messages dropped by [QueueOverflow.DROP_OLDEST]. */
    val droppedMessages: Long,
    /** Received bytes not yet taken by the app. */
    val unpolledBytes: Long,
)
