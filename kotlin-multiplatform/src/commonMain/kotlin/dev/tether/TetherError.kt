package dev.tether

import dev.tether.internal.Codes

/**
 * Every failure Tether reports, as a type: thrown by calls (the first four) or carried by
 * [TetherEvent.Failed] (the connection errors). [code] is the core's stable number
 * (`ws_status`, `ws_error_code`, or the HTTP status of a refused upgrade).
 */
public sealed class TetherError(message: String, public val code: Int) : Exception(message) {
    /** Bad URL, bad option, bad close code, a call that makes no sense now. */
    public class InvalidArgument(message: String) : TetherError(message, Codes.WS_ERR_INVALID_ARGUMENT)

    /** The outgoing queue is at its limit; nothing was taken. */
    public class QueueFull(message: String) : TetherError(message, Codes.WS_ERR_QUEUE_FULL)

    /** The session was closed, or has ended. */
    public class Closed(message: String) : TetherError(message, Codes.WS_ERR_CLOSED)

    /** A bug in Tether (a caught panic) or a runtime failure. */
    public class Internal(message: String) : TetherError(message, Codes.WS_ERR_INTERNAL)

    /**
     * Tether's native library could not be loaded: none for this platform, one built without
     * the JNI exports, or one of another version. The message names the platform and what to
     * do. Thrown by every call that needs the library, the first one and every later one.
     */
    public class LibraryUnavailable(message: String) : TetherError(message, Codes.WS_ERR_INTERNAL)

    /** DNS or TCP connect failed (refused, unreachable, unknown host). */
    public class ConnectFailed(message: String) : TetherError(message, Codes.WS_ERROR_CONNECT)

    /** An attempt exceeded `connectTimeout`. */
    public class ConnectTimeout(message: String) : TetherError(message, Codes.WS_ERROR_CONNECT_TIMEOUT)

    /**
     * The TLS handshake failed for a reason other than the certificate (an alert, no common
     * protocol version or cipher, …); retried like a lost connection. Certificate failures
     * have errors of their own: [TlsUntrusted], [TlsExpired], [TlsHostname], [TlsPin].
     */
    public class Tls(message: String) : TetherError(message, Codes.WS_ERROR_TLS)

    /** The HTTP upgrade failed without a usable status. */
    public class Handshake(message: String) : TetherError(message, Codes.WS_ERROR_HANDSHAKE)

    /** The server refused the upgrade with HTTP [status]; 4xx (but 429) is not retried. */
    public class HttpStatus(public val status: Int, message: String) : TetherError(message, status)

    /** The server chose a subprotocol that was not offered, or none of them. */
    public class Subprotocol(message: String) : TetherError(message, Codes.WS_ERROR_SUBPROTOCOL)

    /** The server broke RFC 6455. */
    public class Protocol(message: String) : TetherError(message, Codes.WS_ERROR_PROTOCOL)

    /** An incoming message or frame exceeded `maxMessageBytes` / `maxFrameBytes`. */
    public class MessageTooBig(message: String) : TetherError(message, Codes.WS_ERROR_MESSAGE_TOO_BIG)

    /** The connection broke (reset, or closed without a close handshake). */
    public class ConnectionLost(message: String) : TetherError(message, Codes.WS_ERROR_CONNECTION_LOST)

    /** No answer to a Ping within `pongTimeout`: the link was dead. */
    public class HeartbeatTimeout(message: String) : TetherError(message, Codes.WS_ERROR_HEARTBEAT_TIMEOUT)

    /** The server did not finish the close handshake within `closeTimeout`. */
    public class CloseTimeout(message: String) : TetherError(message, Codes.WS_ERROR_CLOSE_TIMEOUT)

    /** [QueueOverflow.DROP_OLDEST] dropped queued messages. */
    public class MessageDropped(message: String) : TetherError(message, Codes.WS_ERROR_MESSAGE_DROPPED)

    /** The session ended with queued messages that were never sent. */
    public class Unsent(message: String) : TetherError(message, Codes.WS_ERROR_UNSENT)

    /**
     * The server's certificate chain is not trusted (unknown issuer, bad signature, …) by the
     * roots in force ([TlsConfig.roots], [TlsConfig.extraCaPem]). A configuration error: not
     * retried, the session closes.
     */
    public class TlsUntrusted(message: String) : TetherError(message, Codes.WS_ERROR_TLS_UNTRUSTED)

    /**
     * The server's certificate is expired or not yet valid (or the device's clock is wrong).
     * Not retried, the session closes.
     */
    public class TlsExpired(message: String) : TetherError(message, Codes.WS_ERROR_TLS_EXPIRED)

    /** The server's certificate is not valid for the URL's host name. Not retried, the session closes. */
    public class TlsHostname(message: String) : TetherError(message, Codes.WS_ERROR_TLS_HOSTNAME)

    /**
     * No certificate of the server's verified chain matches [TlsConfig.pinSha256] (a key
     * changed, or a proxy intercepts TLS). Not retried, the session closes.
     */
    public class TlsPin(message: String) : TetherError(message, Codes.WS_ERROR_TLS_PIN)

    /**
     * The HTTP proxy (the core's `proxy` option, which [TetherConfig] does not set yet) could
     * not be reached or refused the CONNECT; a 407 (bad proxy credentials) is not retried.
     */
    public class Proxy(message: String) : TetherError(message, Codes.WS_ERROR_PROXY)

    /** No acknowledgement came in time (Socket.IO `emitWithAck`). */
    public class AckTimeout(message: String) : TetherError(message, Codes.WS_TIMEOUT)

    /** A code this version does not know. */
    public class Unknown(code: Int, message: String) : TetherError(message, code)

    override fun toString(): String = "TetherError.${this::class.simpleName}($code): $message"

    internal companion object {
        /** The error for a core status or error code. */
        fun of(code: Int, message: String): TetherError = when (code) {
            Codes.WS_ERR_NULL_ARGUMENT, Codes.WS_ERR_INVALID_ARGUMENT -> InvalidArgument(message)
            Codes.WS_ERR_QUEUE_FULL -> QueueFull(message)
            Codes.WS_TIMEOUT -> AckTimeout(message)
            Codes.WS_ERR_CLOSED -> Closed(message)
            Codes.WS_ERR_INTERNAL -> Internal(message)
            Codes.WS_ERROR_CONNECT -> ConnectFailed(message)
            Codes.WS_ERROR_CONNECT_TIMEOUT -> ConnectTimeout(message)
            Codes.WS_ERROR_TLS -> Tls(message)
            Codes.WS_ERROR_HANDSHAKE -> Handshake(message)
            Codes.WS_ERROR_SUBPROTOCOL -> Subprotocol(message)
            Codes.WS_ERROR_PROTOCOL -> Protocol(message)
            Codes.WS_ERROR_MESSAGE_TOO_BIG -> MessageTooBig(message)
            Codes.WS_ERROR_CONNECTION_LOST -> ConnectionLost(message)
            Codes.WS_ERROR_HEARTBEAT_TIMEOUT -> HeartbeatTimeout(message)
            Codes.WS_ERROR_CLOSE_TIMEOUT -> CloseTimeout(message)
            Codes.WS_ERROR_MESSAGE_DROPPED -> MessageDropped(message)
            Codes.WS_ERROR_UNSENT -> Unsent(message)
            Codes.WS_ERROR_TLS_UNTRUSTED -> TlsUntrusted(message)
            Codes.WS_ERROR_TLS_EXPIRED -> TlsExpired(message)
            Codes.WS_ERROR_TLS_HOSTNAME -> TlsHostname(message)
            Codes.WS_ERROR_TLS_PIN -> TlsPin(message)
            Codes.WS_ERROR_PROXY -> Proxy(message)
            in 100..599 -> HttpStatus(code, message)
            else -> Unknown(code, message)
        }
    }
}
