// The Server-Sent Events example of the README's "Testing your app", compiled and run as written.
package dev.tether.testkit.readme

import dev.tether.TetherClient
import dev.tether.TetherConfig
import dev.tether.testkit.SseReply
import dev.tether.testkit.TetherTestSseServer
import dev.tether.testkit.withSseTestTimers
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

class OrderStatusTest {
    @Test
    fun `the status feed comes back after a 503 and a drop, where it stopped`() = runBlocking {
        TetherTestSseServer().use { server ->
            server.enqueue(SseReply.Refuse(503, mapOf("Retry-After" to "1")))   // busy: retried in 1 s
            TetherClient(TetherConfig().withSseTestTimers()).use { client ->
                client.sse(server.url("/orders/7/status")) {
                    val first = server.awaitStream()
                    first.send("paid", id = "1")
                    assertEquals("paid", withTimeout(10.seconds) { incoming.first() }.data)

                    first.reset()                        // the connection drops (RST)
                    val second = server.awaitStream()    // the client came back on its own
                    second.send("shipped", id = "2")
                    assertEquals("shipped", withTimeout(10.seconds) { incoming.first() }.data)
                }
            }
            val lastEventIds = List(3) { server.awaitRequest().header("Last-Event-ID") }
            assertEquals(listOf(null, null, "1"), lastEventIds)   // the 503, the first stream, the resume
        }
    }
}
