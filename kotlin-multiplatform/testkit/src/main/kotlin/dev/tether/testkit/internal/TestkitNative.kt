package dev.tether.testkit.internal

/**
 * The JNI functions of the kit's Rust library (testkit/src/jni.rs). The library is
 * `libtether_testkit` (`System.loadLibrary("tether_testkit")`), or the file named by the
 * system property `tether.testkit.library`. Failures are thrown as
 * IllegalArgumentException (bad input) or IllegalStateException.
 */
internal object TestkitNative {
    init {
        val path = System.getProperty("tether.testkit.library")
        if (path.isNullOrEmpty()) System.loadLibrary("tether_testkit") else System.load(path)
    }

    const val PUSH_REPLY: Int = 1
    const val SET_NETWORK: Int = 2
    const val SET_ECHO: Int = 3
    const val RESTART: Int = 4
    const val KILL_CONNECTIONS: Int = 5

    const val TEXT: Int = 1
    const val BINARY: Int = 2
    const val PING: Int = 3
    const val CLOSE: Int = 4
    const val CLOSE_WITHOUT_TCP_CLOSE: Int = 5
    const val DROP: Int = 6
    const val RESET: Int = 7
    const val RESET_MID_FRAME: Int = 8
    const val HALF_CLOSE: Int = 9
    const val OVERSIZE: Int = 10
    const val FRAGMENTED: Int = 11
    const val FAULTS: Int = 12

    @JvmStatic external fun start(tls: Boolean): Long
    @JvmStatic external fun tlsIdentity(server: Long, what: Int): String?
    @JvmStatic external fun free(server: Long)
    @JvmStatic external fun port(server: Long): Int
    @JvmStatic external fun control(server: Long, what: Int, json: String?)
    @JvmStatic external fun awaitRequest(server: Long, timeoutMs: Long): Array<String>?
    @JvmStatic external fun awaitMessage(server: Long, timeoutMs: Long): ByteArray?
    @JvmStatic external fun awaitConnection(server: Long, timeoutMs: Long): Long
    @JvmStatic external fun connectionId(connection: Long): Long
    @JvmStatic external fun connectionFree(connection: Long)
    @JvmStatic external fun command(
        connection: Long, op: Int, code: Int, text: String?, data: ByteArray?, n: Long,
    ): Boolean
}

/** A native handle that is freed once, after every call on it has returned. */
internal class Guarded(private var raw: Long, private val release: (Long) -> Unit) {
    private val lock = java.util.concurrent.locks.ReentrantReadWriteLock()

    fun <T> use(block: (Long) -> T): T {
        lock.readLock().lock()
        try {
            check(raw != 0L) { "closed" }
            return block(raw)
        } finally {
            lock.readLock().unlock()
        }
    }

    fun free() {
        lock.writeLock().lock()
        try {
            if (raw != 0L) release(raw)
            raw = 0L
        } finally {
            lock.writeLock().unlock()
        }
    }
}

/** JSON text for the few shapes the kit sends to the native side. */
internal fun jsonString(s: String): String = buildString {
    append('"')
    for (c in s) {
        when {
            c == '"' -> append("\\\"")
            c == '\\' -> append("\\\\")
            c < ' ' -> append("\\u%04x".format(c.code))
            else -> append(c)
        }
    }
    append('"')
}

internal fun jsonObject(fields: Map<String, String>): String =
    fields.entries.joinToString(",", "{", "}") { (k, v) -> "${jsonString(k)}:${jsonString(v)}" }
