package dev.tether

/**
 * Every failure Tether reports, as a type: thrown by calls (the first four) or carried by
 * [TetherEvent.Failed] (the connection errors). [code] is the core's stable number
 * (`ws_status`, `ws_error_code`, or the HTTP status of a refused upgrade).
 */
public sealed class TetherError(message: String, public val code: Int) : Exception(message) {
    /** Bad URL, bad option, bad close code, a call that makes no sense now. */
    public class InvalidArgument(message: String) : TetherError(message, -2)

    /** The outgoing queue is at its limit; nothing was taken. */
    public class QueueFull(message: String) : TetherError(message, -3)

    /** The session was closed, or has ended. */
    public class Closed(message: String) : TetherError(message, -4)

    /** A bug in Tether (a caught panic) or a runtime failure. */
    public class Internal(message: String) : TetherError(message, -5)

    /** DNS or TCP connect failed (refused, unreachable, unknown host). */
    public class ConnectFailed(message: String) : TetherError(message, -100)

    /** An attempt exceeded `connectTimeout`. */
    public class ConnectTimeout(message: String) : TetherError(message, -101)

    /** TLS failed (handshake, untrusted certificate, wrong hostname). */
    public class Tls(message: String) : TetherError(message, -102)

    /** The HTTP upgrade failed without a usable status. */
    public class Handshake(message: String) : TetherError(message, -103)

    /** The server refused the upgrade with HTTP [status]; 4xx (but 429) is not retried. */
    public class HttpStatus(public val status: Int, message: String) : TetherError(message, status)

    /** The server chose a subprotocol that was not offered, or none of them. */
    public class Subprotocol(message: String) : TetherError(message, -104)

    /** The server broke RFC 6455. */
    public class Protocol(message: String) : TetherError(message, -105)

    /** An incoming message or frame exceeded `maxMessageBytes` / `maxFrameBytes`. */
    public class MessageTooBig(message: String) : TetherError(message, -106)

    /** The connection broke (reset, or closed without a close handshake). */
    public class ConnectionLost(message: String) : TetherError(message, -107)

    /** No answer to a Ping within `pongTimeout`: the link was dead. */
    public class HeartbeatTimeout(message: String) : TetherError(message, -108)

    /** The server did not finish the close handshake within `closeTimeout`. */
    public class CloseTimeout(message: String) : TetherError(message, -109)

    /** [QueueOverflow.DROP_OLDEST] dropped queued messages. */
    public class MessageDropped(message: String) : TetherError(message, -110)

    /** The session ended with queued messages that were never sent. */
    public class Unsent(message: String) : TetherError(message, -111)

    /** A code this version does not know. */
    public class Unknown(code: Int, message: String) : TetherError(message, code)

    override fun toString(): String = "TetherError.${this::class.simpleName}($code): $message"

    internal companion object {
        /** The error for a core status or error code. */
        fun of(code: Int, message: String): TetherError = when (code) {
            -1, -2 -> InvalidArgument(message)
            -3 -> QueueFull(message)
            -4 -> Closed(message)
            -5 -> Internal(message)
            -100 -> ConnectFailed(message)
            -101 -> ConnectTimeout(message)
            -102 -> Tls(message)
            -103 -> Handshake(message)
            -104 -> Subprotocol(message)
            -105 -> Protocol(message)
            -106 -> MessageTooBig(message)
            -107 -> ConnectionLost(message)
            -108 -> HeartbeatTimeout(message)
            -109 -> CloseTimeout(message)
            -110 -> MessageDropped(message)
            -111 -> Unsent(message)
            in 100..599 -> HttpStatus(code, message)
            else -> Unknown(code, message)
        }
    }
}
