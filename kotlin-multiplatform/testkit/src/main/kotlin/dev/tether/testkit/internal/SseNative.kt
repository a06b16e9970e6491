package dev.tether.testkit.internal

/**
 * The JNI functions of the kit's SSE server (testkit/src/jni/sse.rs), in the same library
 * as [TestkitNative]. Failures are thrown as IllegalArgumentException
 * (bad input) or IllegalStateException.
 */
internal object SseNative {
    init {
        // The library TestkitNative loads (loading it again is a no-op).
        val path = System.getProperty("tether.testkit.library")
        if (path.isNullOrEmpty()) System.loadLibrary("tether_testkit") else System.load(path)
    }

    const val PUSH_REPLY: Int = 1
    const val SET_NETWORK: Int = 2
    const val RESTART: Int = 3
    const val KILL_CONNECTIONS: Int = 4

    const val EVENT: Int = 1
    const val COMMENT: Int = 2
    const val RAW: Int = 3
    const val END: Int = 4
    const val RESET: Int = 5
    const val STALL: Int = 6
    const val IS_OPEN: Int = 7

    @JvmStatic external fun start(tls: Boolean): Long
    @JvmStatic external fun free(server: Long)
    @JvmStatic external fun port(server: Long): Int
    @JvmStatic external fun caPem(server: Long): String?
    @JvmStatic external fun control(server: Long, what: Int, json: String?)
    @JvmStatic external fun awaitRequest(server: Long, timeoutMs: Long): Array<String>?
    @JvmStatic external fun awaitStream(server: Long, timeoutMs: Long): Long
    @JvmStatic external fun streamId(stream: Long): Long
    @JvmStatic external fun streamFree(stream: Long)
    @JvmStatic external fun streamCommand(stream: Long, op: Int, text: String?, data: ByteArray?, n: Long): Boolean
}
