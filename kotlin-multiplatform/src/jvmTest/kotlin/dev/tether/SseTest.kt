package dev.tether

import dev.tether.testing.ScriptedSseServer
import dev.tether.testing.ScriptedSseServer.Companion.OPEN
import dev.tether.testing.ScriptedSseServer.Companion.header
import dev.tether.testing.ScriptedSseServer.Companion.send
import dev.tether.testing.ScriptedSseServer.Companion.untilClientGoes
import dev.tether.testing.SseStarletteServer
import dev.tether.testing.await
import dev.tether.testing.eventually
import kotlin.time.Duration
import kotlin.time.Duration.Companion.hours
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.serialization.json.Json
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

/**
 * Server-Sent Events from Kotlin (JNI) against sse-starlette (PyPI) and a hand-written
 * server, both on 127.0.0.1. No speed is asserted: every wait is bounded.
 */
@Timeout(60)
class SseTest {
    private val client = TetherClient {
        reconnect {
            initialDelay = 100.milliseconds
            maxDelay = 500.milliseconds
        }
        contentConverter = KotlinxWebsocketSerializationConverter(Json)
    }
    private val closeables = mutableListOf<AutoCloseable>()

    @AfterEach
    fun stop() {
        client.close()
        closeables.forEach { it.close() }
    }

    private fun starlette() = SseStarletteServer.start().also { closeables += it }
    private fun scripted(respond: (Int, String, java.net.Socket) -> Unit) = ScriptedSseServer(respond).also { closeables += it }

    @Test
    fun `a stream that ends is resumed with Last-Event-ID (sse-starlette)`() = runBlocking<Unit> {
        val server = starlette()
        // /ticks sends three events counting on from the request's Last-Event-ID, then ends.
        val got = client.sse(server.url("/ticks")) {
            val seen = mutableListOf<ServerSentEvent>()
            withTimeout(30.seconds) {
                for (event in incoming) {
                    seen += event
                    if (seen.size == 6) break
                }
            }
            seen
        }
        assertEquals((1..6).map { ServerSentEvent("tick", "$it", "tick $it\nsecond line") }, got)
    }

    @Test
    fun `a POST body is sent and the data decodes through the content converter (sse-starlette)`() = runBlocking<Unit> {
        val server = starlette()
        val message = ChatMessage("ann", "héllo 🌍", 1_700_000_000_000)
        val json = Json.encodeToString(ChatMessage.serializer(), message)
        client.sse(server.url("/echo"), configure = { method = "POST"; body = json }) {
            val event = withTimeout(30.seconds) { incoming.first() }
            assertEquals("echo", event.type)
            assertEquals(message, deserialize<ChatMessage>(event))
            close()
        }
        val typed = client.connectSse(server.url("/echo")) { method = "POST"; body = json }
        assertEquals(Decoded.Value(message), withTimeout(30.seconds) { typed.incoming.deserialized<ChatMessage>().first() })
        typed.close()
        typed.awaitClosed()
    }

    @Test
    fun `a decode failure does not end the stream`() = runBlocking<Unit> {
        val server = scripted { _, _, connection ->
            connection.send(OPEN)
            connection.send("data: {\"from\":\"a\",\"text\":\"1\",\"sentAt\":1}\n\n")
            connection.send("data: not json\n\n")
            connection.send("data: {\"from\":\"a\",\"text\":\"3\",\"sentAt\":3}\n\n")
            connection.untilClientGoes()
        }
        val sse = client.connectSse(server.url())
        val decoded = withTimeout(30.seconds) { sse.incoming.deserialized<ChatMessage>().take(3).toList() }
        assertEquals(Decoded.Value(ChatMessage("a", "1", 1)), decoded[0])
        val failure = decoded[1] as Decoded.Failure
        assertEquals(Frame.Text("not json"), failure.error.frame)
        assertEquals(Decoded.Value(ChatMessage("a", "3", 3)), decoded[2])
        assertEquals(ConnectionState.Open, sse.state.value)
        assertThrows<TetherDeserializeException> { sse.deserialize<ChatMessage>(ServerSentEvent(data = "[]")) }
        sse.close()
        sse.awaitClosed()
    }

    @Test
    fun `a 401 ends the client without retry, and setHeader then reconnect uses the new token (sse-starlette)`() = runBlocking<Unit> {
        val server = starlette()
        val refused = client.connectSse(server.url("/private"))
        val error = assertThrows<TetherError.HttpStatus> { refused.awaitOpen(30.seconds) }
        assertEquals(401, error.status)
        refused.awaitClosed()
        val events = refused.events.toList()
        assertTrue(events.none { it is TetherEvent.Reconnecting }, "no retry after a 401: $events")

        val authorized = TetherClient { header("Authorization", "Bearer good") }
        try {
            val sse = authorized.connectSse(server.url("/private"))
            assertEquals(ServerSentEvent("welcome", null, "hello"), withTimeout(30.seconds) { sse.incoming.first() })
            assertThrows<TetherError.InvalidArgument> { sse.setHeader("Last-Event-ID", "7") }
            sse.setHeader("Authorization", "Bearer expired")
            sse.reconnect()
            val failed = sse.events.filterIsInstance<TetherEvent.Failed>().await(30.seconds) { true }
            assertEquals(401, (failed.error as TetherError.HttpStatus).status)
            // The 401 ended it: incoming completes.
            assertEquals(emptyList<ServerSentEvent>(), withTimeout(30.seconds) { sse.incoming.toList() })
            sse.awaitClosed()
        } finally {
            authorized.close()
        }
    }

    @Test
    fun `a 204 ends the client for good, without an error (sse-starlette)`() = runBlocking<Unit> {
        val server = starlette()
        val (received, events) = client.sse(server.url("/gone")) {
            withTimeout(30.seconds) { incoming.toList() to events.toList() }
        }
        assertEquals(emptyList<ServerSentEvent>(), received)
        assertTrue(events.none { it is TetherEvent.Failed || it is TetherEvent.Reconnecting }, "$events")
        assertEquals(TetherEvent.Terminated, events.last())
    }

    @Test
    fun `pause, resume and a network hint reopen with Last-Event-ID, and close ends incoming`() = runBlocking<Unit> {
        val server = scripted { n, _, connection ->
            connection.send(OPEN)
            when (n) {
                0 -> connection.send("id: 41\ndata: a\n\n")
                // Then the stream ends: a retry, after a backoff only the network hint cuts short.
                1 -> { connection.send("id: 42\ndata: b\n\n"); return@scripted }
                else -> connection.send("data: c\n\n")
            }
            connection.untilClientGoes()
        }
        val patient = TetherClient {
            reconnect {
                initialDelay = 1.hours
                maxDelay = 1.hours
                // Else the first retry's delay is anywhere in [0, 1 h]: 8 % of runs waited < 10 min.
                jitter = 0.0
            }
        }
        try {
            val sse = patient.connectSse(server.url())
            val incoming = sse.incoming.iterator()
            suspend fun next(): ServerSentEvent = withTimeout(30.seconds) { check(incoming.hasNext()); incoming.next() }

            assertEquals(ServerSentEvent("message", "41", "a"), next())
            sse.pause()
            sse.state.await(30.seconds) { it == ConnectionState.Reconnecting(0, Duration.INFINITE) }
            sse.resume()
            assertEquals(ServerSentEvent("message", "42", "b"), next())
            // The stream ended: attempt 1 waits about an hour.
            val waiting = sse.state.await(30.seconds) { it is ConnectionState.Reconnecting && it.attempt == 1 }
            assertTrue((waiting as ConnectionState.Reconnecting).delay > 10.minutes, "$waiting")
            sse.networkChanged(true)
            // The id in force stays 42: c carried none.
            assertEquals(ServerSentEvent("message", "42", "c"), next())
            assertEquals(listOf(null, "41", "42"), server.requests.map { header(it, "Last-Event-ID") })

            sse.close()
            assertTrue(!withTimeout(30.seconds) { incoming.hasNext() }, "incoming ends after close")
            sse.awaitClosed()
            assertEquals(ConnectionState.Closed, sse.state.value)
        } finally {
            patient.close()
        }
    }

    @Test
    fun `a silent stream is reopened after the read timeout`() = runBlocking<Unit> {
        val server = scripted { n, _, connection ->
            connection.send(OPEN)
            connection.send("id: $n\ndata: hello $n\n\n")
            connection.untilClientGoes()
        }
        val got = client.sse(server.url(), configure = { readTimeout = 300.milliseconds }) {
            withTimeout(30.seconds) { incoming.take(2).toList() }
        }
        assertEquals(listOf(ServerSentEvent("message", "0", "hello 0"), ServerSentEvent("message", "1", "hello 1")), got)
        assertEquals("0", header(server.requests[1], "Last-Event-ID"))
    }

    @Test
    fun `SSE clients are freed when their scope is cancelled and when the app forgets them`() = runBlocking<Unit> {
        val server = scripted { n, _, connection ->
            connection.send(OPEN)
            connection.send("data: hello $n\n\n")
            connection.untilClientGoes()
        }
        val before = TetherClient.liveNativeClients()
        val scope = CoroutineScope(Job())
        val clients = (1..20).map { client.connectSse(server.url(), scope) }
        for (sse in clients) withTimeout(30.seconds) { sse.incoming.first() }
        scope.cancel()
        eventually(30.seconds, "live native clients back to $before") { TetherClient.liveNativeClients() == before }
        for (sse in clients) sse.state.await(30.seconds) { it == ConnectionState.Closed }

        openAndForget(server.url(), 10)
        eventually(30.seconds, "forgotten SSE clients freed") {
            System.gc()
            TetherClient.liveNativeClients() == before
        }
    }

    /** Opens [count] clients and keeps no reference to them. */
    private fun openAndForget(url: String, count: Int) {
        repeat(count) { client.connectSse(url) }
    }

    @Test
    fun `WebSocket-only options are refused`() {
        val ws = TetherClient { pingInterval = 5.seconds }
        try {
            assertThrows<TetherError.InvalidArgument> { ws.connectSse("http://127.0.0.1:9/events") }
            assertThrows<TetherError.InvalidArgument> { client.connectSse("ws://127.0.0.1:9/events") }
        } finally {
            ws.close()
        }
    }
}
