package dev.tether

import dev.tether.testing.EchoServer
import dev.tether.testing.await
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.Timeout

@Timeout(60)
class EchoTest {
    private val server = EchoServer.start()
    private val client = TetherClient { pingInterval = 5.seconds }

    @AfterEach
    fun stop() {
        client.close()
        server.kill()
    }

    @Test
    fun `text and binary messages echo in order`() = runBlocking<Unit> {
        val session = client.connect(server.url)
        session.state.await { it == ConnectionState.Open }
        val bytes = ByteArray(300_000) { (it * 7).toByte() }
        session.send("hello")
        session.send(bytes)
        session.send("wörld 🌍")
        val frames = withTimeout(10.seconds) { session.incoming.take(3).toList() }
        assertEquals(Frame.Text("hello"), frames[0])
        assertArrayEquals(bytes, (frames[1] as Frame.Binary).data)
        assertEquals(Frame.Text("wörld 🌍"), frames[2])
        session.close()
        session.awaitClosed()
    }

    @Test
    fun `many small messages arrive in order through batches`() = runBlocking<Unit> {
        val session = client.connect(server.url)
        val n = 5_000
        for (i in 0 until n) session.send("m$i")
        val frames = withTimeout(30.seconds) { session.incoming.take(n).toList() }
        assertEquals((0 until n).map { Frame.Text("m$it") }, frames)
        val stats = session.stats()
        assertEquals(n.toLong(), stats.messagesIn)
        session.close()
        session.awaitClosed()
    }

    @Test
    fun `messages on either side of the direct send buffer's size echo whole`() = runBlocking<Unit> {
        // Up to SendBuffer.CAPACITY bytes a message crosses JNI through a direct buffer, above
        // it as an array: both paths, at the edge, with multi-byte UTF-8 at the ends.
        val session = client.connect(server.url)
        val edge = dev.tether.internal.SendBuffer.CAPACITY
        val texts = listOf(edge - 2, edge, edge + 1).map { size -> "é" + "x".repeat(size - 4) + "é" }
        val binaries = listOf(edge, edge + 1).map { size -> ByteArray(size) { (it * 31).toByte() } }
        for (t in texts) session.send(t)
        for (b in binaries) session.send(b)
        session.send("")
        session.send(ByteArray(0))
        val frames = withTimeout(10.seconds) { session.incoming.take(texts.size + binaries.size + 2).toList() }
        texts.forEachIndexed { i, t -> assertEquals(Frame.Text(t), frames[i]) }
        binaries.forEachIndexed { i, b -> assertArrayEquals(b, (frames[texts.size + i] as Frame.Binary).data) }
        assertEquals(Frame.Text(""), frames[texts.size + binaries.size])
        assertEquals(0, (frames[texts.size + binaries.size + 1] as Frame.Binary).data.size)
        session.close()
        session.awaitClosed()
    }

    @Test
    fun `a tiny incoming buffer refills from the reader's takes, in order, nothing lost or repeated`() = runBlocking<Unit> {
        // The drain waits for room after every frame or two, and the reader's takes resume
        // it on the reader's thread: every refill goes through that path.
        val tiny = TetherClient { pingInterval = 5.seconds; incomingBuffer = 2 }
        try {
            val session = tiny.connect(server.url)
            val n = 3_000
            for (i in 0 until n) session.send("m$i")
            val frames = withTimeout(30.seconds) { (0 until n).map { session.incoming.receive() } }
            assertEquals((0 until n).map { Frame.Text("m$it") }, frames)
            session.close()
            session.awaitClosed()
        } finally {
            tiny.close()
        }
    }

    @Test
    fun `the Ktor-shaped block echoes and ends when the session closes`() = runBlocking<Unit> {
        val seen = mutableListOf<Frame>()
        client.webSocket(server.url) {
            send("one")
            send(byteArrayOf(1, 2, 3))
            incoming.collect { frame ->
                seen += frame
                if (seen.size == 2) close(1000, "done")
            }
        }
        assertEquals(listOf(Frame.Text("one"), Frame.Binary(byteArrayOf(1, 2, 3))), seen)
    }

    @Test
    fun `incoming also reads as Ktor's channel, receive and for`() = runBlocking<Unit> {
        client.webSocket(server.url) {
            send("one")
            send("two")
            send("three")
            assertEquals(Frame.Text("one"), incoming.receive())
            val rest = mutableListOf<Frame>()
            for (frame in incoming) {
                rest += frame
                if (rest.size == 2) close(1000, "done")
            }
            assertEquals(listOf(Frame.Text("two"), Frame.Text("three")), rest)
            assertThrows<TetherError.Closed> { runBlocking { incoming.receive() } }
        }
    }

    @Test
    fun `the negotiated subprotocol and headers reach the server`() = runBlocking<Unit> {
        val c = TetherClient {
            subprotocols("chat.v2", "chat.v1")
            headers["Authorization"] = "Bearer secret"
        }
        c.connect(server.url).use { session ->
            val opened = session.events.await { it is TetherEvent.Opened } as TetherEvent.Opened
            assertEquals("chat.v2", opened.protocol)
            assertEquals("chat.v2", session.protocol)
            assertEquals("Bearer secret", server.handshakes.single()["authorization"])
        }
        c.close()
    }
}
