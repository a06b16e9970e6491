package dev.tether

import dev.tether.testing.ServerProcess
import dev.tether.testing.await
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.put

/** Socket.IO on Kotlin/Native, through cinterop, against npm socket.io on 127.0.0.1. */
class NativeSocketIoTest {
    @Test
    fun eventsAcksBinaryAndNamespacesOverPollingUpgradedToWebSocket() = runBlocking {
        val server = ServerProcess.socketIo("--transports", "polling,websocket")
        if (server == null) {
            println("note: TETHER_SOCKETIO_SERVER is not set (npm socket.io not installed): skipped")
            return@runBlocking
        }
        val client = TetherClient {
            reconnect {
                initialDelay = 100.milliseconds
                maxDelay = 400.milliseconds
            }
        }
        try {
            val io = client.connectSocketIo(server.url) { auth = buildJsonObject { put("user", "native") } }
            val echo = async(start = CoroutineStart.UNDISPATCHED) { io.on("echo").first() }
            io.emit("echo", JsonPrimitive("early"))
            io.awaitConnected()
            assertEquals("early", withTimeout(10.seconds) { echo.await() }.args[0].jsonPrimitive.content)

            val answer = io.emitWithAck("ack-me", JsonPrimitive(7))
            assertEquals("7", answer.args[0].jsonPrimitive.content)

            val question = async(start = CoroutineStart.UNDISPATCHED) { io.on("question").first() }
            val answered = async(start = CoroutineStart.UNDISPATCHED) { io.on("answered").first() }
            io.emit("ask", JsonPrimitive(1))
            withTimeout(10.seconds) { question.await() }.ack(JsonPrimitive("yes"))
            assertEquals("yes", withTimeout(10.seconds) { answered.await() }.args[0].jsonPrimitive.content)

            val binary = async(start = CoroutineStart.UNDISPATCHED) { io.on("binary").first() }
            val blob = ByteArray(5_000) { (it % 13).toByte() }
            io.main.emitBinary("binary-echo", listOf(JsonPrimitive("f")), listOf(blob))
            assertContentEquals(blob, withTimeout(10.seconds) { binary.await() }.attachments.single())

            val info = io.emitWithAck("info").args[0].jsonObject
            assertEquals("websocket", info["transport"]!!.jsonPrimitive.content, "upgraded")

            val refused = io.namespace("/admin", buildJsonObject { put("token", "no") })
            val error = assertFailsWith<TetherError.Handshake> { refused.awaitConnected() }
            assertTrue("bad token" in (error.message ?: ""))
            val admin = io.namespace("/admin", buildJsonObject { put("token", "secret") }).awaitConnected()
            admin.leave()
            admin.state.await { it == NamespaceState.Disconnected("io client disconnect") }

            io.close()
            io.awaitClosed()
            assertEquals(ConnectionState.Closed, io.state.value)
        } finally {
            client.close()
            server.close()
        }
    }
}
