package dev.tether.internal

/** Decoding of a Server-Sent Events client's events, for both crossings. */
internal object SseNativeEvent {
    /**
     * One event from the fields both crossings carry: [kind] is an `sse_event_kind`
     * ([Codes], `SSE_EVENT_…`), [state] a `ws_state`; [data] the event's data or the
     * error's message.
     */
    fun decode(
        kind: Int,
        state: Int,
        type: String?,
        id: String?,
        data: String,
        error: Int,
        attempt: Int,
        delayMs: Long,
    ): NativeEvent = when (kind) {
        Codes.SSE_EVENT_STATE -> NativeEvent.State(state)
        Codes.SSE_EVENT_OPEN -> NativeEvent.Open(null)
        Codes.SSE_EVENT_MESSAGE -> NativeEvent.ServerSent(type ?: "message", id, data)
        Codes.SSE_EVENT_RECONNECTING -> NativeEvent.Reconnecting(attempt, delayMs)
        Codes.SSE_EVENT_ERROR -> NativeEvent.Error(error, data)
        Codes.SSE_EVENT_TERMINATED -> NativeEvent.Terminated
        else -> throw dev.tether.TetherError.Internal("SSE event kind $kind is unknown to this binding")
    }

    /** One record of the JNI crossing (src/jni/sse.rs): little-endian fields, then three strings. */
    fun decodeRecord(r: ByteArray): NativeEvent {
        fun i32(at: Int): Int {
            var v = 0
            for (i in 0 until 4) v = v or ((r[at + i].toInt() and 0xFF) shl (8 * i))
            return v
        }
        fun i64(at: Int): Long {
            var v = 0L
            for (i in 0 until 8) v = v or ((r[at + i].toLong() and 0xFF) shl (8 * i))
            return v
        }
        var at = HEADER
        fun text(): String {
            val len = i32(at)
            val out = r.decodeToString(at + 4, at + 4 + len)
            at += 4 + len
            return out
        }
        val type = text()
        val id = text()
        val data = text()
        val hasId = r[2].toInt() != 0
        return decode(
            kind = r[0].toInt() and 0xFF,
            state = r[1].toInt() and 0xFF,
            type = type,
            id = if (hasId) id else null,
            data = data,
            error = i32(4),
            attempt = i32(8),
            delayMs = i64(12),
        )
    }

    /** Bytes of a record before its strings (src/jni/sse.rs `HEADER`). */
    private const val HEADER = 20
}
