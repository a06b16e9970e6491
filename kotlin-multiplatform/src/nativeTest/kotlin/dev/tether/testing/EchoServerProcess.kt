@file:OptIn(ExperimentalForeignApi::class)

package dev.tether.testing

import kotlin.concurrent.AtomicInt
import kotlin.time.Duration
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
import platform.posix.fflush
import platform.posix.fgets
import platform.posix.fopen
import platform.posix.fputs
import platform.posix.getenv
import platform.posix.getpid
import platform.posix.pclose
import platform.posix.popen
import platform.posix.remove
import platform.posix.usleep

/**
 * The Rust echo server (examples/echo_server.rs, the `EchoServer` of tests/support) as a
 * child process on 127.0.0.1: `TETHER_ECHO_SERVER` names its binary. Commands go to its
 * stdin; its answers land in a file this reads. It exits when [close] closes its stdin
 * (or when this process dies, which closes the pipe too).
 */
class EchoServerProcess private constructor(private val stdin: CPointer<FILE>, private val outFile: String) : AutoCloseable {
    val port: Int = awaitLine(0).removePrefix("PORT ").toInt()
    val url: String get() = "ws://127.0.0.1:$port/echo"
    private var answers = 1

    /** Stops listening and drops every connection without a close handshake. */
    fun kill() = command("kill", "killed")

    /** Listens again on the same port. */
    fun start() = command("start", "started")

    private fun command(line: String, answer: String) {
        check(fputs("$line\n", stdin) >= 0 && fflush(stdin) == 0) { "cannot write to the echo server" }
        val got = awaitLine(answers++)
        check(got == answer) { "echo server answered '$got' to '$line'" }
    }

    /** Line [index] of the server's output, waiting for it (bounded). */
    private fun awaitLine(index: Int, timeout: Duration = 20.seconds): String {
        val start = TimeSource.Monotonic.markNow()
        while (start.elapsedNow() < timeout) {
            readLines().getOrNull(index)?.let { return it }
            usleep(10_000u)
        }
        error("echo server printed no line $index within $timeout (output: ${readLines()})")
    }

    private fun readLines(): List<String> {
        val file = fopen(outFile, "r") ?: return emptyList()
        val lines = mutableListOf<String>()
        try {
            memScoped {
                val buffer = allocArray<ByteVar>(LINE_MAX)
                // Complete lines only: the server writes one line at a time.
                for (n in 0 until MAX_LINES) {
                    val line = fgets(buffer, LINE_MAX, file)?.toKString() ?: break
                    if (!line.endsWith("\n")) break
                    lines += line.trimEnd()
                }
            }
        } finally {
            fclose(file)
        }
        return lines
    }

    override fun close() {
        pclose(stdin) // closes its stdin, then waits for it to exit
        remove(outFile)
    }

    companion object {
        private const val LINE_MAX = 256
        private const val MAX_LINES = 10_000
        private val ids = AtomicInt(0)

        fun start(): EchoServerProcess {
            val binary = getenv("TETHER_ECHO_SERVER")?.toKString()
                ?: error("TETHER_ECHO_SERVER is not set: run scripts/test-kotlin-native.sh")
            val dir = getenv("TMPDIR")?.toKString() ?: "/tmp"
            val out = "$dir/tether-echo-${getpid()}-${ids.incrementAndGet()}.out"
            remove(out)
            val stdin = popen("exec '$binary' --max-seconds 300 > '$out'", "w")
                ?: error("cannot start $binary")
            return try {
                EchoServerProcess(stdin, out)
            } catch (e: Throwable) {
                pclose(stdin)
                throw e
            }
        }
    }
}
