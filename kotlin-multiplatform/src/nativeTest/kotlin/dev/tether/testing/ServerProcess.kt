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
 * A test server as a child process on 127.0.0.1 that prints `LISTENING <port>` first and
 * exits when [close] closes its stdin: npm socket.io ([socketIo]) or sse-starlette ([sse]).
 */
class ServerProcess private constructor(
    private val what: String,
    private val stdin: CPointer<FILE>,
    private val outFile: String,
) : AutoCloseable {
    val port: Int = awaitPort()
    val url: String get() = "http://127.0.0.1:$port"

    private fun awaitPort(): Int {
        val start = TimeSource.Monotonic.markNow()
        while (start.elapsedNow() < 20.seconds) {
            firstLine()?.let { return it.removePrefix("LISTENING ").trim().toInt() }
            usleep(20_000u)
        }
        error("the $what server printed nothing within 20 s")
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

        /**
         * The npm socket.io server (tests/interop/socketio_server.js, which
         * `TETHER_SOCKETIO_SERVER` names); null when the variable is not set (not installed).
         */
        fun socketIo(vararg args: String): ServerProcess? {
            val script = getenv("TETHER_SOCKETIO_SERVER")?.toKString() ?: return null
            val quoted = args.joinToString(" ") { "'$it'" }
            return start("socket.io", "exec node '$script' $quoted")
        }

        /**
         * The sse-starlette server (tests/interop/sse_server.py, run by the Python that
         * `TETHER_SSE_PYTHON` names); null when the variables are not set (not installed).
         */
        fun sse(): ServerProcess? {
            val python = getenv("TETHER_SSE_PYTHON")?.toKString() ?: return null
            val script = getenv("TETHER_SSE_SERVER")?.toKString() ?: return null
            return start("sse-starlette", "exec '$python' '$script' 0")
        }

        private fun start(what: String, command: String): ServerProcess {
            val dir = getenv("TMPDIR")?.toKString() ?: "/tmp"
            val out = "$dir/tether-server-${getpid()}-${ids.incrementAndGet()}.out"
            remove(out)
            val stdin = popen("$command > '$out'", "w") ?: error("cannot start the $what server")
            return try {
                ServerProcess(what, stdin, out)
            } catch (e: Throwable) {
                pclose(stdin)
                throw e
            }
        }
    }
}
