package dev.tether.testkit

import dev.tether.NamespaceState
import dev.tether.TetherClient
import dev.tether.TetherConfig
import dev.tether.TetherError
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.put
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.ValueSource

@Timeout(60)
class TetherTestSocketIoServerTest {
    private fun client() = TetherClient(TetherConfig().withSocketIoTestTimers())

    /** Short pings: a silent link is dead within 0.4 s. */
    private fun server(transports: Set<String> = setOf("polling", "websocket")) =
        TetherTestSocketIoServer(transports, pingInterval = 200.milliseconds, pingTimeout = 200.milliseconds)

    @ParameterizedTest
    @ValueSource(strings = ["websocket", "polling", "polling,websocket"])
    fun `events, acks both ways and server emits on every transport`(transports: String): Unit = runBlocking {
        val offered = transports.split(",").toSet()
        server(offered).use { server ->
            client().use { client ->
                val io = client.connectSocketIo(server.url) {
                    this.transports = offered.toList()
                    auth = buildJsonObject { put("user", "kotlin") }
                }
                io.awaitConnected()
                val connect = server.awaitConnect()
                assertEquals(RecordedConnect(1, "/", true, buildJsonObject { put("user", "kotlin") }), connect)
                val socket = server.awaitSocket()
                assertEquals(if (offered.contains("websocket")) "websocket" else "polling", socket.transport)

                val echo = async(start = CoroutineStart.UNDISPATCHED) { io.on("hello").first() }
                val answer = io.emitWithAck("hello", JsonPrimitive("x"), JsonPrimitive(2))
                assertEquals(JsonArray(listOf(JsonPrimitive("x"), JsonPrimitive(2))), answer.args)
                assertEquals(answer.args, withTimeout(10.seconds) { echo.await() }.args)
                val event = server.awaitEvent()
                assertEquals("hello" to answer.args, event.name to event.args)
                assertNotNull(event.ackId)

                val news = async(start = CoroutineStart.UNDISPATCHED) { io.on("news").first() }
                assertTrue(socket.emit("news", JsonPrimitive("today")))
                assertEquals(JsonArray(listOf(JsonPrimitive("today"))), withTimeout(10.seconds) { news.await() }.args)

                val question = async(start = CoroutineStart.UNDISPATCHED) { io.on("question").first() }
                val pending = socket.emitWithAck("question", JsonPrimitive(41)) ?: error("the socket is gone")
                val asked = withTimeout(10.seconds) { question.await() }
                assertTrue(asked.wantsAck)
                asked.ack(JsonPrimitive(42))
                assertEquals(JsonArray(listOf(JsonPrimitive(42))), pending.await())

                val file = async(start = CoroutineStart.UNDISPATCHED) { io.on("file").first() }
                assertTrue(socket.emitBinary("file", listOf(JsonPrimitive("f")), byteArrayOf(1, 2, 3)))
                assertArrayEquals(byteArrayOf(1, 2, 3), withTimeout(10.seconds) { file.await() }.attachments.single())
                io.close()
                io.awaitClosed()
            }
        }
    }

    @Test
    fun `a refused namespace, a kick, and a leave are recorded`(): Unit = runBlocking {
        server().use { server ->
            server.enqueueConnectReply(ConnectReply.refuse("not an admin"), namespace = "/admin")
            assertThrows(IllegalArgumentException::class.java) {
                server.enqueueConnectReply(ConnectReply.Accept, namespace = "admin")
            }
            client().use { client ->
                val io = client.connectSocketIo(server.url)
                io.awaitConnected()
                val refused = io.namespace("/admin", buildJsonObject { put("token", "wrong") })
                val error = assertThrows(TetherError.Handshake::class.java) { runBlocking { refused.awaitConnected() } }
                assertTrue("not an admin" in (error.message ?: ""), error.message)
                server.awaitConnect() // "/"
                val denied = server.awaitConnect()
                assertEquals("/admin" to false, denied.namespace to denied.accepted)

                val admin = io.namespace("/admin", buildJsonObject { put("token", "right") }).awaitConnected()
                server.awaitSocket() // "/"
                val adminSocket = server.awaitSocket()
                assertEquals("/admin", adminSocket.namespace)
                assertTrue(adminSocket.disconnect())
                admin.state.first { it == NamespaceState.Disconnected("io server disconnect") }
                assertFalse(adminSocket.isConnected)
                assertFalse(adminSocket.emit("late"))

                io.main.leave()
                assertEquals("/", server.awaitDisconnect().namespace)
                assertNull(server.pollEvent(10.milliseconds))
                io.close()
                io.awaitClosed()
            }
        }
    }

    @Test
    fun `a stopped heartbeat, a dropped transport and a restart make the client rejoin`(): Unit = runBlocking {
        server().use { server ->
            client().use { client ->
                client.socketIo(server.url) {
                    val first = server.awaitSocket()
                    assertTrue(first.setHeartbeat(false))
                    // Only the client's dead-link timer can tell: a new session is its reconnect.
                    val second = server.awaitSocket()
                    assertNotEquals(first.session, second.session)

                    assertTrue(second.dropTransport())
                    val third = server.awaitSocket()
                    assertNotEquals(second.session, third.session)

                    server.restart()
                    val fourth = server.awaitSocket()
                    assertFalse(third.isConnected)
                    val back = async(start = CoroutineStart.UNDISPATCHED) { on("back").first() }
                    assertTrue(fourth.emit("back"))
                    withTimeout(10.seconds) { back.await() }
                    assertEquals(4, server.sessionCount)
                }
            }
        }
    }

    @Test
    fun `a cut network is a dead link until lifted`(): Unit = runBlocking {
        server().use { server ->
            client().use { client ->
                client.socketIo(server.url) {
                    val first = server.awaitSocket()
                    server.setNetwork(NetworkConditions(cut = true))
                    // Nothing moves while cut: the client stays out until it is lifted.
                    withTimeout(10.seconds) { main.state.first { it is NamespaceState.Disconnected } }
                    server.liftNetwork()
                    val second = server.awaitSocket()
                    assertNotEquals(first.session, second.session)
                    withTimeout(10.seconds) { main.state.first { it is NamespaceState.Connected } }
                }
            }
        }
    }
}
