package dev.tether.internal

/**
 * The JNI exports of the Server-Sent Events client (`src/jni/sse.rs`). Raw like
 * [NativeBridge]: handles are pointers, every call on one goes through [GuardedClient.use].
 */
internal object SseBridge {
    @JvmStatic external fun connect(url: String, optionsJson: String?): Long
    @JvmStatic external fun free(handle: Long)

    /** The next event as a record (see src/jni/sse.rs), or null when none came in time. */
    @JvmStatic external fun poll(handle: Long, timeoutMs: Int): ByteArray?
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

/** One native Server-Sent Events client through [SseBridge]; its pointer is valid until [free]. */
internal class JniSse(private val pointer: Long) : NotAWebSocket("SSE"), RawSse {
    val handle: Long get() = pointer

    override fun drain(into: MutableList<NativeEvent>, max: Int) {
        for (i in 0 until max) {
            val record = translate { SseBridge.poll(pointer, 0) } ?: return
            val event = SseNativeEvent.decodeRecord(record)
            into.add(event)
            if (event === NativeEvent.Terminated) return
        }
    }

    override fun free() = SseBridge.free(pointer)

    override fun close(code: Int, reason: String) = translate { SseBridge.close(pointer) }
    override fun pause() = translate { SseBridge.pause(pointer) }
    override fun resume() = translate { SseBridge.resume(pointer) }
    override fun networkChanged(available: Boolean) = translate { SseBridge.networkChanged(pointer, available) }
    override fun reconnect() = translate { SseBridge.reconnect(pointer) }
    override fun setHeader(name: String, value: String?) = translate { SseBridge.setHeader(pointer, name, value) }
}
