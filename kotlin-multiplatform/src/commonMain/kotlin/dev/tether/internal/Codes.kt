package dev.tether.internal

/**
 * The core's numbers under their C names (include/tether.h): `ws_status`, `ws_error_code`,
 * `ws_state`, `ws_event_kind`, `sio_event_kind` and `sse_event_kind`, which the JNI wire
 * formats share. Declared once, in Rust (src/error.rs, src/ffi/); this is their one Kotlin copy, and the rest of the Kotlin
 * code names them from here. tests/code_tables.rs (`cargo test --test code_tables`) fails
 * when a name or a number here differs from Rust's, when one is missing or extra, and when
 * an error code has no [dev.tether.TetherError] of its own.
 */
internal object Codes {
    // ws_status
    const val WS_OK = 0
    const val WS_TIMEOUT = 1
    const val WS_ERR_NULL_ARGUMENT = -1
    const val WS_ERR_INVALID_ARGUMENT = -2
    const val WS_ERR_QUEUE_FULL = -3
    const val WS_ERR_CLOSED = -4
    const val WS_ERR_INTERNAL = -5

    // ws_error_code
    const val WS_ERROR_CONNECT = -100
    const val WS_ERROR_CONNECT_TIMEOUT = -101
    const val WS_ERROR_TLS = -102
    const val WS_ERROR_HANDSHAKE = -103
    const val WS_ERROR_SUBPROTOCOL = -104
    const val WS_ERROR_PROTOCOL = -105
    const val WS_ERROR_MESSAGE_TOO_BIG = -106
    const val WS_ERROR_CONNECTION_LOST = -107
    const val WS_ERROR_HEARTBEAT_TIMEOUT = -108
    const val WS_ERROR_CLOSE_TIMEOUT = -109
    const val WS_ERROR_MESSAGE_DROPPED = -110
    const val WS_ERROR_UNSENT = -111
    const val WS_ERROR_TLS_UNTRUSTED = -112
    const val WS_ERROR_TLS_EXPIRED = -113
    const val WS_ERROR_TLS_HOSTNAME = -114
    const val WS_ERROR_TLS_PIN = -115
    const val WS_ERROR_PROXY = -116

    // ws_state
    const val WS_STATE_CONNECTING = 0
    const val WS_STATE_OPEN = 1
    const val WS_STATE_RECONNECTING = 2
    const val WS_STATE_CLOSING = 3
    const val WS_STATE_CLOSED = 4

    // ws_event_kind
    const val WS_EVENT_STATE = 0
    const val WS_EVENT_OPEN = 1
    const val WS_EVENT_TEXT = 2
    const val WS_EVENT_BINARY = 3
    const val WS_EVENT_CLOSED = 4
    const val WS_EVENT_RECONNECTING = 5
    const val WS_EVENT_ERROR = 6
    const val WS_EVENT_TERMINATED = 7
    const val WS_EVENT_RESENT = 8

    // sio_event_kind (Socket.IO clients)
    const val SIO_EVENT_STATE = 0
    const val SIO_EVENT_CONNECT = 1
    const val SIO_EVENT_CONNECT_ERROR = 2
    const val SIO_EVENT_DISCONNECT = 3
    const val SIO_EVENT_EVENT = 4
    const val SIO_EVENT_ACK = 5
    const val SIO_EVENT_RECONNECTING = 6
    const val SIO_EVENT_ERROR = 7
    const val SIO_EVENT_TERMINATED = 8

    // sse_event_kind (Server-Sent Events clients)
    const val SSE_EVENT_STATE = 0
    const val SSE_EVENT_OPEN = 1
    const val SSE_EVENT_MESSAGE = 2
    const val SSE_EVENT_RECONNECTING = 3
    const val SSE_EVENT_ERROR = 4
    const val SSE_EVENT_TERMINATED = 5
}

