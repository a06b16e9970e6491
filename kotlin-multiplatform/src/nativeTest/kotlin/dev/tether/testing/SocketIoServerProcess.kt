@file:OptIn(ExperimentalForeignApi::class)

package dev.tether.testing

import kotlin.concurrent.AtomicInt
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource
import kotlinx.cinterop.ByteVar
import kotlinx.cinterop.CPointer
import kotlinx.cinterop.ExperimentalForeignApi
import kotlinx.cinterop.allocArray
import kotlinx.cinterop.memScoped
import kotlinx.cinterop.toKString
import platform.posix.FILE
import platform.posix.fclose
import platform.posix.fgets
import platform.posix.fopen
import platform.posix.getenv
import platform.posix.getpid
import platform.posix.pclose
import platform.posix.popen
import platform.posix.remove
import platform.posix.usleep

/**
 * The npm socket.io server (tests/interop/socketio_server.js, which
 * `TETHER_SOCKETIO_SERVER` names) as a child process on 127.0.0.1. It exits when [close]
 * closes its stdin. Null from [start] when the variable is not set (npm peers not installed).
 */
class SocketIoServerProcess private constructor(private val stdin: CPointer<FILE>, private val outFile: String) : AutoCloseable {
    val port: Int = awaitPort()
    val url: String get() = "http://127.0.0.1:$port"

    private fun awaitPort(): Int {
        val start = TimeSource.Monotonic.markNow()
        while (start.elapsedNow() < 20.seconds) {
            firstLine()?.let { return it.removePrefix("LISTENING ").trim().toInt() }
            usleep(20_000u)
        }
        error("the socket.io server printed nothing within 20 s")
    }

    private fun firstLine(): String? {
        val file = fopen(outFile, "r") ?: return null
        try {
            return memScoped {
                val buffer = allocArray<ByteVar>(256)
                fgets(buffer, 256, file)?.toKString()?.takeIf { it.endsWith("\n") }
            }
        } finally {
            fclose(file)
        }
    }

    override fun close() {
        pclose(stdin)
        remove(outFile)
    }

    companion object {
        private val ids = AtomicInt(0)

        fun start(vararg args: String): SocketIoServerProcess? {
            val script = getenv("TETHER_SOCKETIO_SERVER")?.toKString() ?: return null
            val dir = getenv("TMPDIR")?.toKString() ?: "/tmp"
            val out = "$dir/tether-sio-${getpid()}-${ids.incrementAndGet()}.out"
            remove(out)
            val quoted = args.joinToString(" ") { "'$it'" }
            val stdin = popen("exec node '$script' $quoted > '$out'", "w") ?: error("cannot start node")
            return try {
                SocketIoServerProcess(stdin, out)
            } catch (e: Throwable) {
                pclose(stdin)
                throw e
            }
        }
    }
}
