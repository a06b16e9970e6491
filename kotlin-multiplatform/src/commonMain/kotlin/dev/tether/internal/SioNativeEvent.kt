package dev.tether.internal

/** What a Socket.IO server did, as the core reports it (JSON stays text here). */
internal sealed class SioNativeEvent {
    abstract val namespace: String

    class Connect(override val namespace: String, val recovered: Boolean) : SioNativeEvent()
    class ConnectError(override val namespace: String, val dataJson: String) : SioNativeEvent()
    class Disconnect(override val namespace: String, val reason: String) : SioNativeEvent()

    /** [ackId] > 0: the server waits for an answer with that id. */
    class Event(
        override val namespace: String,
        val name: String,
        val argsJson: String,
        val ackId: Long,
        val attachments: List<ByteArray>,
    ) : SioNativeEvent()

    /** [error] 0: answered with [argsJson]; else a `ws_status` (WS_TIMEOUT) and no data. */
    class Ack(
        override val namespace: String,
        val ackId: Long,
        val argsJson: String?,
        val attachments: List<ByteArray>,
        val error: Int,
    ) : SioNativeEvent()

    companion object {
        /**
         * One event from the fields both crossings carry: [kind] is a `sio_event_kind`
         * ([Codes], `SIO_EVENT_…`), [state] a `ws_state`; [data] the JSON or the message (null: none).
         */
        fun decode(
            kind: Int,
            state: Int,
            namespace: String?,
            name: String?,
            data: String?,
            ackId: Long,
            error: Int,
            attempt: Int,
            delayMs: Long,
            recovered: Boolean,
            attachments: List<ByteArray>,
        ): NativeEvent {
            val nsp = namespace ?: "/"
            return when (kind) {
                Codes.SIO_EVENT_STATE -> NativeEvent.State(state)
                Codes.SIO_EVENT_RECONNECTING -> NativeEvent.Reconnecting(attempt, delayMs)
                Codes.SIO_EVENT_ERROR -> NativeEvent.Error(error, data ?: "")
                Codes.SIO_EVENT_TERMINATED -> NativeEvent.Terminated
                Codes.SIO_EVENT_CONNECT -> NativeEvent.SocketIo(Connect(nsp, recovered))
                Codes.SIO_EVENT_CONNECT_ERROR -> NativeEvent.SocketIo(ConnectError(nsp, data ?: "{}"))
                Codes.SIO_EVENT_DISCONNECT -> NativeEvent.SocketIo(Disconnect(nsp, data ?: ""))
                Codes.SIO_EVENT_EVENT -> NativeEvent.SocketIo(Event(nsp, name ?: "", data ?: "[]", ackId, attachments))
                Codes.SIO_EVENT_ACK -> NativeEvent.SocketIo(Ack(nsp, ackId, data, attachments, error))
                else -> throw dev.tether.TetherError.Internal("Socket.IO event kind $kind is unknown to this binding")
            }
        }

        /** One record of the JNI crossing (src/jni/sio.rs): little-endian fields, then lengths and bytes. */
        fun decodeRecord(r: ByteArray): NativeEvent {
            var at = 0
            fun u8(): Int = (r[at++].toInt() and 0xFF)
            fun i32(): Int {
                var v = 0
                for (i in 0 until 4) v = v or ((r[at + i].toInt() and 0xFF) shl (8 * i))
                at += 4
                return v
            }
            fun i64(): Long {
                var v = 0L
                for (i in 0 until 8) v = v or ((r[at + i].toLong() and 0xFF) shl (8 * i))
                at += 8
                return v
            }
            fun bytes(): ByteArray {
                val len = i32()
                val out = r.copyOfRange(at, at + len)
                at += len
                return out
            }
            val kind = u8()
            val state = u8()
            val recovered = u8() != 0
            u8()
            val error = i32()
            val ackId = i64()
            val attempt = i32()
            val delayMs = i64()
            val namespace = bytes().decodeToString()
            val name = bytes().decodeToString()
            val data = bytes().decodeToString()
            val count = i32()
            val attachments = List(count) { bytes() }
            return decode(
                kind, state,
                namespace.ifEmpty { null }, name.ifEmpty { null },
                // An ack that failed carries no data (the empty text means none).
                if (kind == Codes.SIO_EVENT_ACK && error != 0) null else data,
                ackId, error, attempt, delayMs, recovered, attachments,
            )
        }
    }
}
