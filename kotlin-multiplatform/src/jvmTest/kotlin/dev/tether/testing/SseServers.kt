package dev.tether.testing

import java.io.File
import java.io.OutputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread
import org.junit.jupiter.api.Assumptions.assumeTrue

/**
 * The sse-starlette server of tests/interop/sse_server.py (in the venv that
 * scripts/test-interop.sh installs), as a child process on 127.0.0.1; it exits when [close]
 * closes its stdin, and is killed by its pid if it does not. Skips the test when it is not
 * installed, unless `TETHER_INTEROP=1`.
 */
class SseStarletteServer private constructor(private val process: Process, val port: Int) : AutoCloseable {
    fun url(path: String): String = "http://127.0.0.1:$port$path"

    override fun close() {
        process.outputStream.close()
        if (!process.waitFor(5, TimeUnit.SECONDS)) process.destroyForcibly()
    }

    companion object {
        private val repo: File = generateSequence(File("").absoluteFile) { it.parentFile }
            .first { File(it, "tests/interop/sse_server.py").exists() }

        fun start(): SseStarletteServer {
            val python = File(repo, ".tools/interop/sse-venv/bin/python")
            val installed = python.canExecute()
            if (!installed && System.getenv("TETHER_INTEROP") == "1") {
                error("TETHER_INTEROP=1 but sse-starlette is not installed (scripts/test-interop.sh --install-only)")
            }
            assumeTrue(installed, "sse-starlette is not installed (scripts/test-interop.sh installs it)")
            val process = ProcessBuilder(python.path, "tests/interop/sse_server.py", "0")
                .directory(repo)
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start()
            val line = process.inputStream.bufferedReader().readLine() ?: ""
            val port = line.removePrefix("LISTENING ").trim().toIntOrNull()
            if (port == null) {
                process.destroyForcibly()
                error("the sse-starlette server did not start: \"$line\"")
            }
            return SseStarletteServer(process, port)
        }
    }
}

/**
 * A hand-written SSE server on 127.0.0.1: connection number n (from 0) is answered by
 * `respond(n, requestHead, connection)`; the connection closes when it returns. The request
 * heads are kept in [requests], in order.
 */
class ScriptedSseServer(private val respond: (Int, String, Socket) -> Unit) : AutoCloseable {
    private val socket = ServerSocket(0, 50, InetAddress.getLoopbackAddress())
    private val open = CopyOnWriteArrayList<Socket>()
    val requests = CopyOnWriteArrayList<String>()
    val port: Int get() = socket.localPort

    fun url(path: String = "/events"): String = "http://127.0.0.1:$port$path"

    private val acceptor = thread(isDaemon = true, name = "scripted-sse") {
        var n = 0
        while (!socket.isClosed) {
            val connection = try {
                socket.accept()
            } catch (e: Exception) {
                break
            }
            open += connection
            val index = n++
            thread(isDaemon = true) { serve(index, connection) }
        }
    }

    private fun serve(index: Int, connection: Socket) {
        connection.use {
            try {
                val head = readHead(it)
                requests += head
                respond(index, head, it)
                it.getOutputStream().flush()
            } catch (e: Exception) {
                // The client went away (closed, reconnected): nothing to answer.
            }
        }
        open -= connection
    }

    /** The request line and headers, up to the blank line. */
    private fun readHead(connection: Socket): String {
        val input = connection.getInputStream()
        val head = StringBuilder()
        while (!head.endsWith("\r\n\r\n")) {
            val b = input.read()
            if (b < 0) break
            head.append(b.toChar())
            check(head.length < 64 * 1024) { "request head too long" }
        }
        return head.toString()
    }

    override fun close() {
        socket.close()
        open.forEach { it.close() }
        acceptor.join(5_000)
    }

    companion object {
        const val OPEN = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\r\n"

        /** A header's value in a request head (case-insensitive name), or null. */
        fun header(head: String, name: String): String? = head.split("\r\n").drop(1)
            .firstOrNull { it.substringBefore(':').trim().equals(name, ignoreCase = true) }
            ?.substringAfter(':')?.trim()

        fun Socket.send(text: String) {
            val out: OutputStream = getOutputStream()
            out.write(text.toByteArray())
            out.flush()
        }

        /** Holds the connection open until the client goes (at most 60 s). */
        fun Socket.untilClientGoes() {
            soTimeout = 60_000
            try {
                while (getInputStream().read() >= 0) continue
            } catch (e: Exception) {
                // Reset or timed out: gone either way.
            }
        }
    }
}
