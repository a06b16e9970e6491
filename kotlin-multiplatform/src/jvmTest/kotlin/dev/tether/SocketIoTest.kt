package dev.tether

import dev.tether.testing.SocketIoServer
import dev.tether.testing.await
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.put
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.ValueSource

@Timeout(60)
class SocketIoTest {
    private val client = TetherClient {
        reconnect {
            initialDelay = 100.milliseconds
            maxDelay = 500.milliseconds
        }
    }
    private val servers = mutableListOf<SocketIoServer>()

    @AfterEach
    fun stop() {
        client.close()
        servers.forEach { it.close() }
    }

    private fun server(transports: String, vararg more: String) =
        SocketIoServer.start("--transports", transports, *more).also { servers += it }

    private fun transportsOf(server: String) = server.split(",")

    @ParameterizedTest
    @ValueSource(strings = ["websocket", "polling", "polling,websocket"])
    fun `events, acks both ways and binary on every transport`(transports: String) = runBlocking<Unit> {
        val server = server(transports)
        val io = client.connectSocketIo(server.url) {
            this.transports = transportsOf(transports)
            auth = buildJsonObject { put("user", "kotlin") }
        }
        // Listening before anything is asked: Socket.IO drops events nobody listens to.
        val echo = async(start = CoroutineStart.UNDISPATCHED) { io.on("echo").first() }
        io.emit("echo", JsonPrimitive("early"), JsonPrimitive(1))
        io.awaitConnected()
        assertEquals(JsonArray(listOf(JsonPrimitive("early"), JsonPrimitive(1))), withTimeout(10.seconds) { echo.await() }.args)

        val answer = io.emitWithAck("ack-me", JsonPrimitive("x"), buildJsonObject { put("n", 2) })
        assertEquals("x", answer.args[0].jsonPrimitive.content)
        assertEquals(2, answer.args[1].jsonObject["n"]!!.jsonPrimitive.int)

        val answered = async(start = CoroutineStart.UNDISPATCHED) { io.on("answered").first() }
        val question = async(start = CoroutineStart.UNDISPATCHED) { io.on("question").first() }
        io.emit("ask", JsonPrimitive(5))
        val q = withTimeout(10.seconds) { question.await() }
        assertTrue(q.wantsAck)
        q.ack(JsonPrimitive("yes"))
        assertEquals("yes", withTimeout(10.seconds) { answered.await() }.args[0].jsonPrimitive.content)

        val binary = async(start = CoroutineStart.UNDISPATCHED) { io.on("binary").first() }
        val blob = ByteArray(70_000) { (it % 251).toByte() }
        io.main.emitBinary("binary-echo", listOf(JsonPrimitive("f")), listOf(blob))
        val b = withTimeout(10.seconds) { binary.await() }
        assertEquals(1, b.attachments.size)
        assertArrayEquals(blob, b.attachments[0])

        val info = io.emitWithAck("info").args[0].jsonObject
        assertEquals(JsonPrimitive("kotlin"), info["auth"]!!.jsonObject["user"])
        io.close()
        io.awaitClosed()
        assertEquals(ConnectionState.Closed, io.state.value)
    }

    @Test
    fun `namespaces join with auth, report refusals and leave`() = runBlocking<Unit> {
        val server = server("websocket")
        val io = client.connectSocketIo(server.url) { transports = listOf("websocket") }
        io.awaitConnected()
        val refused = io.namespace("/admin", buildJsonObject { put("token", "wrong") })
        val error = assertThrows<TetherError.Handshake> { runBlocking { refused.awaitConnected() } }
        assertTrue("bad token" in (error.message ?: ""), error.message)
        assertThrows<TetherError.InvalidArgument> { refused.emit("echo") }

        val admin = io.namespace("/admin", buildJsonObject { put("token", "secret") }).awaitConnected()
        val echo = async(start = CoroutineStart.UNDISPATCHED) { admin.on("echo").first() }
        admin.emit("echo", JsonPrimitive("in admin"))
        assertEquals("/admin", withTimeout(10.seconds) { echo.await() }.namespace)
        admin.leave()
        admin.state.await { it == NamespaceState.Disconnected("io client disconnect") }
        assertThrows<TetherError.InvalidArgument> { io.emit("connect") }
        io.close()
        io.awaitClosed()
    }

    @Test
    fun `an ack that never comes times out`() = runBlocking<Unit> {
        val server = server("websocket")
        val io = client.connectSocketIo(server.url) {
            transports = listOf("websocket")
            ackTimeout = 300.milliseconds
        }
        io.awaitConnected()
        assertThrows<TetherError.AckTimeout> { runBlocking { io.emitWithAck("void") } }
        io.close()
        io.awaitClosed()
    }

    @Test
    fun `the Ktor-shaped block connects, runs and closes`() = runBlocking<Unit> {
        val server = server("polling,websocket")
        val seen = client.socketIo(server.url) {
            val echoes = async(start = CoroutineStart.UNDISPATCHED) { on("echo").take(3).toList() }
            for (i in 0 until 3) emit("echo", JsonPrimitive(i))
            withTimeout(10.seconds) { echoes.await() }.map { it.args[0].jsonPrimitive.int }
        }
        assertEquals(listOf(0, 1, 2), seen)
    }

    @Test
    fun `a refused main namespace fails awaitConnected with the server's reason`() = runBlocking<Unit> {
        val server = server("websocket")
        val io = client.connectSocketIo(server.url) {
            transports = listOf("websocket")
            auth = buildJsonObject { put("reject", "banned") }
        }
        val error = assertThrows<TetherError.Handshake> { runBlocking { io.awaitConnected() } }
        assertTrue("banned" in (error.message ?: ""), error.message)
        io.close()
        io.awaitClosed()
        yield()
    }
}
