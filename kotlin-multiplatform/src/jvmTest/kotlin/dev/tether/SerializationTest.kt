package dev.tether

import dev.tether.testing.EchoServer
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.serialization.ExperimentalSerializationApi
import kotlinx.serialization.SerialFormat
import kotlinx.serialization.Serializable
import kotlinx.serialization.cbor.Cbor
import kotlinx.serialization.json.Json
import kotlinx.serialization.protobuf.ProtoBuf
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

@Serializable
data class ChatMessage(val from: String, val text: String, val sentAt: Long)

/** Typed messages through a content converter, as Ktor's KotlinxWebsocketSerializationConverter. */
@OptIn(ExperimentalSerializationApi::class)
@Timeout(60)
class SerializationTest {
    private val server = EchoServer.start()

    @AfterEach
    fun stop() = server.kill()

    private fun client(format: SerialFormat) = TetherClient {
        pingInterval = 0.seconds
        contentConverter = KotlinxWebsocketSerializationConverter(format)
    }

    private val hello = ChatMessage("ann", "héllo 🌍", 1_700_000_000_000)

    @Test
    fun `JSON goes as text frames and comes back typed`() = runBlocking<Unit> {
        val client = client(Json)
        val session = client.webSocketSession(server.url)
        session.sendSerialized(hello)
        assertEquals(hello, withTimeout(10.seconds) { session.receiveDeserialized<ChatMessage>() })
        assertEquals(Json.encodeToString(ChatMessage.serializer(), hello), server.receivedTexts.single())
        session.close()
        client.close()
    }

    @Test
    fun `ProtoBuf and CBOR go as binary frames`() = runBlocking<Unit> {
        for (format in listOf(ProtoBuf, Cbor)) {
            val client = client(format)
            val session = client.webSocketSession(server.url)
            session.sendSerialized(hello)
            val decoded = withTimeout(10.seconds) { session.incoming.deserialized<ChatMessage>().take(1).toList() }
            assertEquals(listOf(Decoded.Value(hello)), decoded, "$format")
            assertTrue(server.receivedTexts.isEmpty(), "$format sent text frames")
            session.close()
            session.awaitClosed()
            client.close()
        }
    }

    @Test
    fun `a frame that does not decode is a typed error and the session goes on`() = runBlocking<Unit> {
        val client = client(Json)
        client.webSocket(server.url) {
            send("not json")
            send(byteArrayOf(1, 2, 3))
            sendSerialized(hello)
            val error = assertThrows<TetherDeserializeException> { runBlocking { receiveDeserialized<ChatMessage>() } }
            assertEquals(Frame.Text("not json"), error.frame)
            val decoded = withTimeout(10.seconds) { incoming.deserialized<ChatMessage>().take(2).toList() }
            val failure = decoded[0] as Decoded.Failure
            assertEquals(Frame.Binary(byteArrayOf(1, 2, 3)), failure.error.frame)
            assertEquals(Decoded.Value(hello), decoded[1])
            assertEquals(ConnectionState.Open, state.value)
            close()
        }
        client.close()
    }

    @Test
    fun `typed calls without a converter say what to set`() = runBlocking<Unit> {
        val client = TetherClient()
        val session = client.connect(server.url)
        val error = assertThrows<TetherError.InvalidArgument> { runBlocking { session.sendSerialized(hello) } }
        assertTrue("contentConverter" in error.message.orEmpty(), error.message)
        assertThrows<TetherError.InvalidArgument> { session.incoming.deserialized<ChatMessage>() }
        session.close()
        client.close()
    }
}
