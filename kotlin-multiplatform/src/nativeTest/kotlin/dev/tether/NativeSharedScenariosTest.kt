package dev.tether

import dev.tether.testing.EchoServerProcess
import dev.tether.testing.awaitOpenScenario
import dev.tether.testing.typedMessagesScenario
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlinx.coroutines.runBlocking

/** The commonTest scenarios that the JVM suite runs too (SharedScenariosTest). */
class NativeSharedScenariosTest {
    private val server = EchoServerProcess.start()

    @AfterTest
    fun stop() = server.close()

    @Test
    fun typedMessages() = runBlocking { typedMessagesScenario(server.url) }

    @Test
    fun awaitingOpenOrFail() = runBlocking {
        // A server that stopped listening: its port refuses connections.
        EchoServerProcess.start().use { down ->
            down.kill()
            awaitOpenScenario(server.url, down.url)
        }
    }
}
