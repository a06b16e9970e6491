package dev.tether.readme

import dev.tether.testing.SocketIoServer
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

@Timeout(30)
class ReadmeSocketIoExampleTest {
    @Test
    fun `the README Socket_IO example runs against npm socket_io`() = runBlocking<Unit> {
        SocketIoServer.start().use { server ->
            assertEquals(listOf("hello", "42"), socketIoChat(server.url, "t0ken"))
        }
    }
}
