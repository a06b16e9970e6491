package dev.tether

import dev.tether.testing.EchoServer
import dev.tether.testing.awaitOpenScenario
import dev.tether.testing.typedMessagesScenario
import java.net.ServerSocket
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

/** The commonTest scenarios that the native suite runs too (NativeSharedScenariosTest). */
@Timeout(60)
class SharedScenariosTest {
    private val server = EchoServer.start()

    @AfterEach
    fun stop() = server.kill()

    @Test
    fun `typed messages`() = runBlocking { typedMessagesScenario(server.url) }

    @Test
    fun `awaiting open, or fail`() = runBlocking {
        val port = ServerSocket(0).use { it.localPort }
        awaitOpenScenario(server.url, "ws://127.0.0.1:$port/echo")
    }
}
