package dev.tether.testing

import java.io.File
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.Assumptions.assumeTrue

/**
 * The npm socket.io server of tests/interop/socketio_server.js (installed by
 * scripts/test-interop.sh), run as a child process on 127.0.0.1; killed (by its pid) on
 * [close]. Skips the test when it is not installed, unless `TETHER_INTEROP=1`.
 */
class SocketIoServer private constructor(private val process: Process, val port: Int) : AutoCloseable {
    val url: String get() = "http://127.0.0.1:$port"

    override fun close() {
        process.destroy()
        if (!process.waitFor(5, TimeUnit.SECONDS)) process.destroyForcibly()
    }

    companion object {
        private val repo: File = generateSequence(File("").absoluteFile) { it.parentFile }
            .first { File(it, "tests/interop/socketio_server.js").exists() }

        fun start(vararg args: String): SocketIoServer {
            val installed = File(repo, "tests/interop/node_modules/socket.io/package.json").exists()
            if (!installed && System.getenv("TETHER_INTEROP") == "1") {
                error("TETHER_INTEROP=1 but npm socket.io is not installed (scripts/test-interop.sh --install-only)")
            }
            assumeTrue(installed, "npm socket.io is not installed (scripts/test-interop.sh installs it)")
            val process = ProcessBuilder(listOf("node", "tests/interop/socketio_server.js") + args)
                .directory(repo)
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start()
            val line = process.inputStream.bufferedReader().readLine() ?: ""
            val port = line.removePrefix("LISTENING ").trim().toIntOrNull()
            if (port == null) {
                process.destroyForcibly()
                error("the socket.io server did not start: \"$line\"")
            }
            return SocketIoServer(process, port)
        }
    }
}
