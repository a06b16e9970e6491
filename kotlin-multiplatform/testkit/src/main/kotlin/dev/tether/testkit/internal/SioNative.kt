package dev.tether.testkit.internal

/**
 * The JNI functions of the kit's Socket.IO server (testkit/src/jni_sio.rs), in the same
 * library as [TestkitNative] (`libtether_testkit`, or the file named by the system property
 * `tether.testkit.library`). Failures are thrown as IllegalArgumentException (bad input) or
 * IllegalStateException.
 */
internal object SioNative {
    init {
        val path = System.getProperty("tether.testkit.library")
        if (path.isNullOrEmpty()) System.loadLibrary("tether_testkit") else System.load(path)
    }

    const val PORT: Int = 1
    const val SESSIONS: Int = 2

    const val PUSH_CONNECT_REPLY: Int = 1
    const val SET_ECHO: Int = 2
    const val RESTART: Int = 3
    const val KILL_CONNECTIONS: Int = 4
    const val SET_NETWORK: Int = 5

    const val CONNECT: Int = 1
    const val EVENT: Int = 2
    const val DISCONNECT: Int = 3

    const val EMIT: Int = 1
    const val KICK: Int = 2
    const val CLOSE_SESSION: Int = 3
    const val DROP_TRANSPORT: Int = 4
    const val HEARTBEAT_OFF: Int = 5
    const val HEARTBEAT_ON: Int = 6

    @JvmStatic external fun start(configJson: String?): Long
    @JvmStatic external fun free(server: Long)
    @JvmStatic external fun number(server: Long, what: Int): Int
    @JvmStatic external fun control(server: Long, what: Int, nsp: String?, json: String?)
    @JvmStatic external fun awaitRecord(server: Long, what: Int, timeoutMs: Long): Array<Any?>?
    @JvmStatic external fun awaitSocket(server: Long, timeoutMs: Long): Long
    @JvmStatic external fun socketInfo(socket: Long): Array<Any?>
    @JvmStatic external fun socketState(socket: Long): Int
    @JvmStatic external fun socketCommand(socket: Long, op: Int, event: String?, argsJson: String?, data: ByteArray?): Boolean
    @JvmStatic external fun emitWithAck(socket: Long, event: String, argsJson: String): Long
    @JvmStatic external fun ackAwait(ack: Long, timeoutMs: Long): String?
    @JvmStatic external fun socketFree(socket: Long)
    @JvmStatic external fun ackFree(ack: Long)
}
