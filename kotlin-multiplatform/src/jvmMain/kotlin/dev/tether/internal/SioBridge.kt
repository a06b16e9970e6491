package dev.tether.internal

/**
 * The JNI exports of the Socket.IO client (`src/jni/sio.rs`). Raw like [NativeBridge]:
 * handles are pointers, every call on one goes through [GuardedClient.use].
 */
internal object SioBridge {
    @JvmStatic external fun connect(url: String, optionsJson: String?): Long
    @JvmStatic external fun free(handle: Long)

    /** The next event as a record (see src/jni/sio.rs), or null when none came in time. */
    @JvmStatic external fun poll(handle: Long, timeoutMs: Int): ByteArray?
    @JvmStatic external fun join(handle: Long, nsp: String, authJson: String?)
    @JvmStatic external fun leave(handle: Long, nsp: String)

    /** The ack id (≥ 1) when [wantAck], else 0; -3 when the queue is full. */
    @JvmStatic external fun emit(handle: Long, nsp: String, event: String, argsJson: String, attachments: Array<ByteArray>?, wantAck: Boolean): Long

    /** 0, or -3 when the queue is full. */
    @JvmStatic external fun ack(handle: Long, nsp: String, ackId: Long, argsJson: String, attachments: Array<ByteArray>?): Int
    @JvmStatic external fun close(handle: Long)
    @JvmStatic external fun pause(handle: Long)
    @JvmStatic external fun resume(handle: Long)
    @JvmStatic external fun networkChanged(handle: Long, available: Boolean)
    @JvmStatic external fun reconnect(handle: Long)
    @JvmStatic external fun setHeader(handle: Long, name: String, value: String?)
    @JvmStatic external fun pollSetAdd(set: Long, handle: Long, token: Long)
    @JvmStatic external fun pollSetRearm(set: Long, handle: Long)
    @JvmStatic external fun pollSetRemove(set: Long, handle: Long)
}

/** One native Socket.IO client through [SioBridge]; its pointer is valid until [free]. */
internal class JniSocketIo(private val pointer: Long) : NotAWebSocket("Socket.IO"), RawSocketIo {
    val handle: Long get() = pointer

    override fun drain(into: MutableList<NativeEvent>, max: Int) {
        for (i in 0 until max) {
            val record = translate { SioBridge.poll(pointer, 0) } ?: return
            val event = SioNativeEvent.decodeRecord(record)
            into.add(event)
            if (event === NativeEvent.Terminated) return
        }
    }

    override fun free() = SioBridge.free(pointer)

    override fun join(namespace: String, authJson: String?) = translate { SioBridge.join(pointer, namespace, authJson) }
    override fun leave(namespace: String) = translate { SioBridge.leave(pointer, namespace) }

    override fun emit(namespace: String, event: String, argsJson: String, attachments: List<ByteArray>, wantAck: Boolean): Long? {
        val id = translate {
            SioBridge.emit(pointer, namespace, event, argsJson, attachments.takeIf { it.isNotEmpty() }?.toTypedArray(), wantAck)
        }
        return if (id == Codes.WS_ERR_QUEUE_FULL.toLong()) null else id
    }

    override fun ack(namespace: String, ackId: Long, argsJson: String, attachments: List<ByteArray>): Boolean =
        translate {
            SioBridge.ack(pointer, namespace, ackId, argsJson, attachments.takeIf { it.isNotEmpty() }?.toTypedArray())
        } == Codes.WS_OK

    override fun close(code: Int, reason: String) = translate { SioBridge.close(pointer) }
    override fun pause() = translate { SioBridge.pause(pointer) }
    override fun resume() = translate { SioBridge.resume(pointer) }
    override fun networkChanged(available: Boolean) = translate { SioBridge.networkChanged(pointer, available) }
    override fun reconnect() = translate { SioBridge.reconnect(pointer) }
    override fun setHeader(name: String, value: String?) = translate { SioBridge.setHeader(pointer, name, value) }
}
