package dev.tether.readme

import dev.tether.testing.EchoServer
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

@Timeout(30)
class ReadmeExampleTest {
    @Test
    fun `the README example runs against a local server`() = runBlocking<Unit> {
        val server = EchoServer.start()
        try {
            assertEquals(listOf("hello", "3 bytes"), chat(server.url, "t0ken"))
            assertEquals("Bearer t0ken", server.handshakes.single()["authorization"])
        } finally {
            server.kill()
        }
    }
}
