package dev.tether

import dev.tether.testing.EchoServer
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

/** A send on a full queue suspends until the core reports room (a room notice of the poll set). */
@Timeout(60)
class QueueRoomTest {
    @Test
    fun `a send on a full queue waits for room and then goes out in order`() = runBlocking<Unit> {
        // The upgrade is answered late, so the queue fills while connecting.
        EchoServer.start(handshakeDelayMs = 2_000).use { server ->
            val client = TetherClient {
                pingInterval = 0.seconds
                queue { maxMessages = 1 }
            }
            val session = client.connect(server.url)
            session.send("first")
            assertFalse(session.trySend("refused"), "the queue holds one message")
            val second = async { session.send("second") }
            val third = async { session.send("third") }
            yield()
            assertFalse(second.isCompleted || third.isCompleted, "sends on a full queue wait")
            withTimeout(20.seconds) {
                second.await()
                third.await()
            }
            val echoed = withTimeout(20.seconds) { session.incoming.take(3).toList() }
            assertEquals(listOf("first", "second", "third"), echoed.map { (it as Frame.Text).text })
            session.close()
            session.awaitClosed()
            client.close()
        }
    }

    @Test
    fun `a send waiting for room fails with Closed when the session ends`() = runBlocking<Unit> {
        EchoServer.start(handshakeDelayMs = 10_000).use { server ->
            val client = TetherClient {
                pingInterval = 0.seconds
                queue { maxMessages = 1 }
            }
            val session = client.connect(server.url)
            session.send("first")
            val waiting = async { runCatching { session.send("second") }.exceptionOrNull() }
            yield()
            session.close()
            val error = withTimeout(20.seconds) { waiting.await() }
            assert(error is TetherError.Closed) { "a waiting send gave $error" }
            client.close()
        }
    }
}
