package dev.tether.testkit

import dev.tether.ConnectionState
import dev.tether.ServerSentEvent
import dev.tether.SseScope
import dev.tether.TetherClient
import dev.tether.TetherConfig
import dev.tether.TetherError
import dev.tether.TetherEvent
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

/** TetherTestSseServer driven by the façade's real SSE client (JNI) on 127.0.0.1; every wait bounded. */
@Timeout(60)
class TetherTestSseServerTest {
    private fun client(configure: TetherConfig.() -> Unit = {}) =
        TetherClient(TetherConfig().withSseTestTimers().apply(configure))

    private suspend fun SseScope.next(): ServerSentEvent = withTimeout(10.seconds) { incoming.first() }

    @Test
    fun `events with types, ids and lines arrive, and the request is recorded`(): Unit = runBlocking {
        TetherTestSseServer().use { server ->
            client { headers["X-App"] = "kotlin-test" }.use { client ->
                client.sse(server.url("/feed?room=3")) {
                    val stream = server.awaitStream()
                    assertTrue(stream.isOpen)
                    assertTrue(stream.send("one", id = "1", type = "tick"))
                    assertTrue(stream.comment("keep-alive"))
                    assertTrue(stream.send(ServerSentEvent(id = "2", data = "two\nlines")))
                    val got = withTimeout(10.seconds) { incoming.take(2).toList() }
                    assertEquals(
                        listOf(ServerSentEvent("tick", "1", "one"), ServerSentEvent("message", "2", "two\nlines")),
                        got,
                    )
                    val request = server.awaitRequest()
                    assertEquals("GET", request.method)
                    assertEquals("/feed?room=3", request.path)
                    assertEquals("text/event-stream", request.header("Accept"))
                    assertEquals("kotlin-test", request.header("x-app"))
                    assertNull(request.header("Last-Event-ID"))
                    assertEquals(stream.id, request.connection)
                }
            }
        }
    }

    @Test
    fun `a dropped stream is resumed with Last-Event-ID, a clean end too`(): Unit = runBlocking {
        TetherTestSseServer().use { server ->
            client().use { client ->
                client.sse(server.url("/feed")) {
                    val first = server.awaitStream()
                    first.send("a", id = "7")
                    assertEquals("7", next().id)
                    assertTrue(first.reset())
                    val second = server.awaitStream()
                    assertNotEquals(first.id, second.id)
                    assertFalse(first.isOpen)
                    assertFalse(first.send("late"))
                    second.send("b", id = "8")
                    assertEquals(ServerSentEvent(id = "8", data = "b"), next())
                    assertTrue(second.end())
                    val third = server.awaitStream()
                    third.send("c")
                    assertEquals(ServerSentEvent(id = "8", data = "c"), next())
                    val lastIds = List(3) { server.awaitRequest().header("Last-Event-ID") }
                    assertEquals(listOf(null, "7", "8"), lastIds)
                }
            }
        }
    }

    @Test
    fun `a refusal with Retry-After is retried after it, then the stream is accepted`(): Unit = runBlocking {
        TetherTestSseServer().use { server ->
            server.enqueue(SseReply.Refuse(503, mapOf("Retry-After" to "1")))
            server.enqueue(SseReply.Accept(headers = mapOf("X-Feed" to "v2")))
            client().use { client ->
                val sse = client.connectSse(server.url("/feed"), this)
                withTimeout(10.seconds) { sse.state.first { it == ConnectionState.Open } }
                val reconnect = withTimeout(10.seconds) { sse.events.filterIsInstance<TetherEvent.Reconnecting>().first() }
                assertEquals(1.seconds, reconnect.delay)
                val refused = server.awaitRequest()
                val accepted = server.awaitRequest()
                assertEquals(accepted.connection, server.awaitStream().id)
                assertNotEquals(refused.connection, accepted.connection)
                sse.close()
                sse.awaitClosed()
            }
        }
    }

    @Test
    fun `a 204 ends the client, and a wrong Content-Type is an error without retry`(): Unit = runBlocking {
        TetherTestSseServer().use { server ->
            server.enqueue(SseReply.Refuse(204))
            client().use { client ->
                val seen = client.sse(server.url("/done")) { withTimeout(10.seconds) { incoming.toList() } }
                assertEquals(emptyList<ServerSentEvent>(), seen)

                server.enqueue(SseReply.WrongContentType("text/html"))
                val sse = client.connectSse(server.url("/html"), this)
                val error = runCatching { sse.awaitOpen(10.seconds) }.exceptionOrNull()
                assertTrue(error is TetherError, "awaitOpen gave $error")
                withTimeout(10.seconds) { sse.state.first { it == ConnectionState.Closed } }
                sse.awaitClosed()
            }
            assertEquals(2, List(2) { server.awaitRequest() }.size)
            assertNull(server.pollRequest(200.milliseconds), "a request was retried")
            assertNull(server.pollStream(10.milliseconds))
        }
    }

    @Test
    fun `a stall is found by the read timeout`(): Unit = runBlocking {
        TetherTestSseServer().use { server ->
            client().use { client ->
                client.sse(server.url("/feed"), configure = { readTimeout = 500.milliseconds }) {
                    val first = server.awaitStream()
                    assertTrue(first.setStall(true))
                    first.send("never")
                    val second = server.awaitStream()   // the client gave up on the silent stream
                    assertNotEquals(first.id, second.id)
                    withTimeout(10.seconds) { state.first { it == ConnectionState.Open } }
                }
            }
        }
    }

    @Test
    fun `a network cut holds events until lifted`(): Unit = runBlocking {
        TetherTestSseServer().use { server ->
            client().use { client ->
                client.sse(server.url("/feed")) {   // the default read timeout (60 s) outlasts the cut
                    val stream = server.awaitStream()
                    server.setNetwork(NetworkConditions(cut = true))
                    stream.send("held", id = "h")
                    assertNull(withTimeoutOrNull(300.milliseconds) { incoming.first() }, "through a cut")
                    server.liftNetwork()
                    assertEquals(ServerSentEvent(id = "h", data = "held"), next())
                    assertTrue(stream.isOpen)
                }
            }
        }
    }

    @Test
    fun `awaits time out, bad input is refused, and a closed server says so`() {
        val server = TetherTestSseServer()
        assertNull(server.pollStream(10.milliseconds))
        assertThrows(AssertionError::class.java) { server.awaitRequest(10.milliseconds) }
        assertThrows(IllegalArgumentException::class.java) { server.enqueue(SseReply.Refuse(200)) }
        assertTrue(server.url("/x").startsWith("http://127.0.0.1:"))
        assertNull(server.caPem)
        server.close()
        server.close()
        assertThrows(IllegalStateException::class.java) { server.restart() }
    }
}
