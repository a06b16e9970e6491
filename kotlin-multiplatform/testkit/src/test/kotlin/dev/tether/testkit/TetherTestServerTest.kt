package dev.tether.testkit

import dev.tether.ConnectionState
import dev.tether.Frame
import dev.tether.TetherClient
import dev.tether.TetherConfig
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class TetherTestServerTest {
    private fun client(configure: TetherConfig.() -> Unit = {}) =
        TetherClient(TetherConfig().withTestTimers().apply(configure))

    @Test
    fun `a refusal with Retry-After then an accept, with the request recorded`(): Unit = runBlocking {
        TetherTestServer().use { server ->
            server.enqueue(HandshakeReply.Refuse(503, mapOf("Retry-After" to "1")))
            server.enqueue(HandshakeReply.Accept(subprotocol = "chat.v2"))
            client {
                headers["X-App"] = "kotlin-test"
                subprotocols("chat.v1", "chat.v2")
            }.use { client ->
                val session = client.connect(server.url("/room?id=3"))
                withTimeout(10.seconds) { session.state.first { it == ConnectionState.Open } }
                val refused = server.awaitRequest()
                val accepted = server.awaitRequest()
                assertEquals("/room?id=3", refused.path)
                assertEquals("kotlin-test", accepted.header("X-App"))
                assertNotEquals(refused.connection, accepted.connection)
                session.close()
            }
        }
    }

    @Test
    fun `messages both ways and a close with any code`(): Unit = runBlocking {
        TetherTestServer().use { server ->
            client().use { client ->
                val session = client.connect(server.url())
                session.send("ping me")
                val message = server.awaitMessage()
                assertEquals("ping me", message.text)
                val connection = server.awaitConnection()
                assertEquals(message.connection, connection.id)
                assertTrue(connection.sendFragmented("from the server", 3))
                val frames = mutableListOf<Frame>()
                withTimeout(10.seconds) {
                    session.incoming.first { frames += it; it == Frame.Text("from the server") }
                }
                assertEquals(listOf(Frame.Text("ping me"), Frame.Text("from the server")), frames)
                assertTrue(connection.close(4000, "bye"))
                withTimeout(10.seconds) { session.state.first { it == ConnectionState.Closed } }
            }
        }
    }

    @Test
    fun `a black hole is found by the heartbeat and a network cut is survived`(): Unit = runBlocking {
        TetherTestServer().use { server ->
            client().use { client ->
                val session = client.connect(server.url())
                val first = server.awaitConnection()
                first.setFaults(ConnectionFaults(blackHole = true))
                val second = server.awaitConnection()
                assertNotEquals(first.id, second.id)
                // Open before the cut: else a cut 101 lifted in time opens this same connection.
                withTimeout(10.seconds) { session.state.first { it == ConnectionState.Open } }

                // Open on the second connection first (its 101 may be out before the client saw it).
                withTimeout(10.seconds) { session.state.first { it == ConnectionState.Open } }
                server.setNetwork(NetworkConditions(cut = true))
                withTimeout(10.seconds) { session.state.first { it is ConnectionState.Reconnecting } }
                server.liftNetwork()
                server.awaitConnection()
                withTimeout(10.seconds) { session.state.first { it == ConnectionState.Open } }
                session.close()
            }
        }
    }

    @Test
    fun `a TLS server is trusted through its CA and pinned, and a rotated key fails the pin`(): Unit = runBlocking {
        TetherTestServer(tls = true).use { server ->
            server.enqueue(HandshakeReply.Accept())
            server.enqueue(HandshakeReply.OtherKey)
            val config: TetherConfig.() -> Unit = {
                tls {
                    extraCaPem = server.caPem
                    pinSha256 += server.pinSha256!!
                }
            }
            client(config).use { client ->
                val session = client.connect(server.url("/secure"))
                session.send("over tls")
                assertEquals("over tls", server.awaitMessage().text)
                session.close()
            }
            client(config).use { client ->
                val session = client.connect(server.url("/secure"))
                withTimeout(10.seconds) { session.state.first { it == ConnectionState.Closed } }
            }
        }
    }

    @Test
    fun `awaits time out, bad input is refused, and a closed server says so`() {
        val server = TetherTestServer()
        assertNull(server.pollMessage(10.milliseconds))
        assertThrows(AssertionError::class.java) { server.awaitRequest(10.milliseconds) }
        assertThrows(IllegalArgumentException::class.java) { server.enqueue(HandshakeReply.Refuse(101)) }
        server.close()
        server.close()
        assertThrows(IllegalStateException::class.java) { server.restart() }
    }
}
