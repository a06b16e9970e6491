package dev.tether

import dev.tether.internal.Codes
import dev.tether.testing.EchoServer
import dev.tether.testing.await
import dev.tether.testing.connectWhenOutboxFree
import dev.tether.testing.eventually
import dev.tether.testing.outboxScenario
import java.nio.file.Path
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** The durable outbox through the façade: tracked sends, acks, the pending count, reopen, resends. */
@Timeout(60)
class OutboxTest {
    private var server = EchoServer.start()

    @TempDir
    lateinit var dir: Path

    private val clients = mutableListOf<TetherClient>()

    @AfterEach
    fun stop() {
        clients.forEach { it.close() }
        server.kill()
    }

    private val outboxPath: String get() = dir.resolve("outbox.db").toString()

    /** A client with the outbox at [outboxPath] (fsync "always", the default) and quick retries. */
    private fun client(configure: TetherConfig.() -> Unit = {}): TetherClient = TetherClient {
        pingInterval = 5.seconds
        reconnect {
            initialDelay = 50.milliseconds
            maxDelay = 200.milliseconds
            jitter = 0.0
        }
        outbox { path = outboxPath }
        configure()
    }.also { clients += it }

    @Test
    fun `the DSL writes the outbox options with the core's names`() {
        val config = TetherConfig().apply {
            outbox {
                path = "/data/app/outbox.db"
                fsync = OutboxFsync.BATCH
                maxMessages = 10
                maxBytes = 4096
            }
        }
        assertEquals(
            """{"outbox":{"path":"/data/app/outbox.db","fsync":"batch","max_messages":10,"max_bytes":4096}}""",
            config.toJson(),
        )
        assertEquals("""{"outbox":{"fsync":"always"}}""", TetherConfig().apply { outbox { fsync = OutboxFsync.ALWAYS } }.toJson())
    }

    @Test
    fun `bad outbox options and a second owner of the file are typed errors`() = runBlocking<Unit> {
        val noPath = assertThrows<TetherError.InvalidArgument> {
            TetherClient { outbox { fsync = OutboxFsync.BATCH } }.connect(server.url)
        }
        assertTrue("outbox.path" in noPath.message!!, noPath.message)
        val zero = assertThrows<TetherError.InvalidArgument> { client { outbox { maxMessages = 0 } }.connect(server.url) }
        assertTrue("max_messages" in zero.message!!, zero.message)
        val noFolder = assertThrows<TetherError.InvalidArgument> {
            client { outbox { path = dir.resolve("missing/outbox.db").toString() } }.connect(server.url)
        }
        assertTrue("outbox" in noFolder.message!!, noFolder.message)

        val owner = client().connect(server.url)
        val before = TetherClient.liveNativeClients()
        val second = assertThrows<TetherError.InvalidArgument> { client().connect(server.url) }
        assertEquals(before, TetherClient.liveNativeClients(), "a refused connect must not leave a native client")
        assertTrue(outboxPath in second.message!! && "in use" in second.message!!, second.message)
        owner.close()
        owner.awaitClosed()
    }

    @Test
    fun `sendTracked returns growing ids and the messages reach the server`() = runBlocking<Unit> {
        val session = client().connect(server.url)
        session.state.await { it == ConnectionState.Open }
        val ids = listOf(
            session.sendTracked("t1"),
            session.sendTracked(byteArrayOf(7, 8)),
            session.sendTracked(Frame.Text("t3")),
        )
        session.send("plain")
        assertTrue(ids.first() >= 1 && ids.zipWithNext().all { (a, b) -> a < b }, "ids $ids")
        val frames = withTimeout(10.seconds) { session.incoming.take(4).toList() }
        assertEquals(listOf(Frame.Text("t1"), Frame.Binary(byteArrayOf(7, 8)), Frame.Text("t3"), Frame.Text("plain")), frames)
        assertEquals(listOf("t1", "t3", "plain"), server.receivedTexts.toList())
        session.close()
        session.awaitClosed()
    }

    @Test
    fun `pendingOutbox drops to 0 after delivery for untracked messages and holds tracked ones until acked`() = runBlocking<Unit> {
        val session = client().connect(server.url)
        session.state.await { it == ConnectionState.Open }
        assertEquals(0L, session.pendingOutbox())
        session.send("u1")
        session.send(byteArrayOf(1))
        val tracked = session.sendTracked("tracked")
        assertEquals(3, withTimeout(10.seconds) { session.incoming.take(3).toList() }.size)
        // The untracked ones leave once a Ping written after them is answered; the tracked one stays.
        eventually(what = "only the tracked message left") { session.pendingOutbox() == 1L }
        delay(300)
        assertEquals(1L, session.pendingOutbox(), "a tracked message stays until acked")
        session.ack(tracked)
        eventually(what = "an empty outbox") { session.pendingOutbox() == 0L }

        // Acked: a reconnect does not send it again.
        session.reconnect()
        eventually(what = "a second handshake") { server.handshakes.size == 2 }
        session.state.await { it == ConnectionState.Open }
        session.send("marker")
        assertEquals(Frame.Text("marker"), withTimeout(10.seconds) { session.incoming.take(1).toList() }.single())
        assertEquals(listOf("u1", "tracked", "marker"), server.receivedTexts.toList())
        session.close()
        session.awaitClosed()
    }

    @Test
    fun `ack of an unknown id and outbox calls without an outbox fail typed`() = runBlocking<Unit> {
        val session = client().connect(server.url)
        session.state.await { it == ConnectionState.Open }
        val id = session.sendTracked("once")
        val unknown = assertThrows<TetherError.InvalidArgument> { session.ack(id + 1000) }
        assertEquals(Codes.WS_ERR_INVALID_ARGUMENT, unknown.code)
        assertTrue("${id + 1000}" in unknown.message!!, unknown.message)
        assertThrows<TetherError.InvalidArgument> { session.ack(-1) }
        session.ack(id)
        assertThrows<TetherError.InvalidArgument> { session.ack(id) } // acked already
        session.close()
        session.awaitClosed()
        assertThrows<TetherError.Closed> { session.ack(id) }

        val plain = TetherClient().also { clients += it }.connect(server.url)
        assertThrows<TetherError.InvalidArgument> { runBlocking { plain.sendTracked("x") } }
        assertThrows<TetherError.InvalidArgument> { plain.ack(1) }
        assertThrows<TetherError.InvalidArgument> { plain.pendingOutbox() }
        plain.close()
        plain.awaitClosed()
    }

    @Test
    fun `a session reopened on the same outbox after close sends what was left, first and in order`() = runBlocking<Unit> {
        val port = server.port
        server.kill()
        val first = client().connect(server.url)
        first.state.await { it is ConnectionState.Reconnecting }
        first.send("left 1")
        val tracked = first.sendTracked("left 2")
        first.send(byteArrayOf(3))
        assertEquals(3L, first.pendingOutbox())
        first.close()
        val events = withTimeout(10.seconds) { first.events.toList() }
        assertTrue(events.any { it is TetherEvent.Failed && it.error is TetherError.Unsent }, "$events")
        // Its native client is freed by then; the core lets go of the file a few ms later.
        withTimeout(10.seconds) { first.awaitClosed() }

        val second = client().connectWhenOutboxFree(server.url)
        assertEquals(3L, second.pendingOutbox(), "loaded from the file")
        second.send("new")
        server = EchoServer.start(port)
        val frames = withTimeout(10.seconds) { second.incoming.take(4).toList() }
        assertEquals(listOf(Frame.Text("left 1"), Frame.Text("left 2"), Frame.Binary(byteArrayOf(3)), Frame.Text("new")), frames)
        val resent = second.events.filterIsInstance<TetherEvent.Resent>().await { true }
        assertEquals(listOf(tracked), resent.ids)
        eventually(what = "only the tracked message left") { second.pendingOutbox() == 1L }
        second.ack(tracked)
        eventually(what = "an empty outbox") { second.pendingOutbox() == 0L }
        assertTrue(second.sendTracked("later") > tracked, "ids grow across sessions")
        second.close()
        second.awaitClosed()
    }

    @Test
    fun `tracked messages go out again after the server restarts, reported as Resent`() = runBlocking<Unit> {
        val port = server.port
        val before = server
        outboxScenario(server.url, outboxPath) {
            server.kill()
            server = EchoServer.start(port)
        }
        // The tracked text went out before the restart and again after; the untracked one once.
        assertEquals(listOf("plain", "tracked 1"), before.receivedTexts.toList())
        assertEquals(listOf("tracked 1", "later"), server.receivedTexts.toList())
    }
}
