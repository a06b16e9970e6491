package dev.tether

import dev.tether.testing.EchoServerProcess
import dev.tether.testing.await
import dev.tether.testing.eventually
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

/**
 * The Kotlin façade on Kotlin/Native, through cinterop, against the real Rust echo server
 * in a child process on 127.0.0.1 (see [EchoServerProcess]).
 */
class NativeEchoTest {
    private val server = EchoServerProcess.start()
    private val client = TetherClient {
        pingInterval = 5.seconds
        reconnect {
            initialDelay = 100.milliseconds
            maxDelay = 400.milliseconds
            jitter = 0.0
        }
    }

    @AfterTest
    fun stop() {
        client.close()
        server.close()
    }

    @Test
    fun textAndBinaryMessagesEchoInOrder() = runBlocking {
        val session = client.connect(server.url)
        session.state.await { it == ConnectionState.Open }
        val bytes = ByteArray(300_000) { (it * 7).toByte() }
        session.send("hello")
        session.send(bytes)
        session.send("wörld 🌍")
        session.send(ByteArray(0))
        session.send("")
        val frames = withTimeout(10.seconds) { session.incoming.take(5).toList() }
        assertEquals(Frame.Text("hello"), frames[0])
        assertContentEquals(bytes, (frames[1] as Frame.Binary).data)
        assertEquals(Frame.Text("wörld 🌍"), frames[2])
        assertContentEquals(ByteArray(0), (frames[3] as Frame.Binary).data)
        assertEquals(Frame.Text(""), frames[4])
        val stats = session.stats()
        assertEquals(5L, stats.messagesIn)
        assertEquals(5L, stats.messagesOut)
        session.close()
        session.awaitClosed()
    }

    @Test
    fun manySmallMessagesAndSeveralSessionsAtOnce() = runBlocking {
        val n = 2_000
        val sessions = (0 until 4).map { client.connect(server.url) }
        val received = sessions.mapIndexed { s, session ->
            async {
                for (i in 0 until n) session.send("s$s m$i")
                withTimeout(30.seconds) { session.incoming.take(n).toList() }
            }
        }.awaitAll()
        received.forEachIndexed { s, frames -> assertEquals((0 until n).map { Frame.Text("s$s m$it") }, frames) }
        sessions.forEach { it.close() }
        sessions.forEach { it.awaitClosed() }
    }

    @Test
    fun theKtorShapedBlockEchoesAndNegotiatesTheSubprotocol() = runBlocking {
        val c = TetherClient { subprotocols("chat.v2", "chat.v1") }
        val seen = mutableListOf<Frame>()
        c.webSocket(server.url) {
            send("one")
            send(byteArrayOf(1, 2, 3))
            incoming.collect { frame ->
                seen += frame
                if (seen.size == 2) close(1000, "done")
            }
            assertEquals("chat.v2", session.protocol)
        }
        assertEquals(listOf(Frame.Text("one"), Frame.Binary(byteArrayOf(1, 2, 3))), seen)
        c.close()
    }

    @Test
    fun reconnectsAfterTheServerRestartsAndDeliversQueuedMessagesInOrder() = runBlocking {
        val session = client.connect(server.url)
        val events = mutableListOf<TetherEvent>()
        val collector = launch { session.events.collect { events += it } }
        session.state.await { it == ConnectionState.Open }
        session.send("before")
        assertEquals(Frame.Text("before"), withTimeout(10.seconds) { session.incoming.take(1).toList() }.single())

        server.kill()
        session.state.await { it is ConnectionState.Reconnecting }
        val queued = (1..20).map { "queued $it" }
        queued.forEach { assertTrue(session.trySend(it), "queued while offline: $it") }
        assertEquals(20L, session.stats().queuedMessages)

        server.start()
        val frames = withTimeout(20.seconds) { session.incoming.take(queued.size).toList() }
        assertEquals(queued.map { Frame.Text(it) }, frames)
        assertEquals(ConnectionState.Open, session.state.value)
        assertTrue(session.stats().reconnects >= 1)
        eventually(what = "a second Opened event") { events.count { it is TetherEvent.Opened } == 2 }
        assertTrue(events.any { it is TetherEvent.Reconnecting }, "events: $events")

        session.close()
        session.awaitClosed()
        collector.join()
        assertEquals(TetherEvent.Terminated, events.last())
    }

    @Test
    fun closeEndsTheSessionAndFreesItsNativeClient() = runBlocking {
        val baseline = TetherClient.liveNativeClients()
        val session = client.connect(server.url)
        assertEquals(baseline + 1, TetherClient.liveNativeClients())
        val events = mutableListOf<TetherEvent>()
        val collector = launch { session.events.collect { events += it } }
        session.state.await { it == ConnectionState.Open }

        session.close(1000, "bye")
        withTimeout(10.seconds) { session.awaitClosed() }
        collector.join()
        assertEquals(ConnectionState.Closed, session.state.value)
        val closed = events.filterIsInstance<TetherEvent.Closed>().single()
        assertEquals(1000, closed.code)
        assertEquals(TetherEvent.Terminated, events.last())
        assertEquals(emptyList(), session.incoming.toList())
        assertFalse(session.trySend("after close"))
        assertFailsWith<TetherError.Closed> { session.send("after close") }
        session.close() // a second close does nothing
        eventually(what = "the native client freed") { TetherClient.liveNativeClients() == baseline }
    }

    @Test
    fun pauseResumeReconnectAndHintsReachTheCore() = runBlocking<Unit> {
        val session = client.connect(server.url)
        val events = mutableListOf<TetherEvent>()
        val collector = launch { session.events.collect { events += it } }
        session.state.await { it == ConnectionState.Open }

        session.pause()
        session.state.await { it is ConnectionState.Reconnecting }
        assertTrue(session.trySend("sent while paused"))
        session.resume()
        assertEquals(Frame.Text("sent while paused"), withTimeout(10.seconds) { session.incoming.take(1).toList() }.single())

        session.setHeader("X-Token", "refreshed")
        session.reconnect()
        eventually(what = "three opens") { events.count { it is TetherEvent.Opened } == 3 }
        session.networkChanged(false)
        session.networkChanged(true)
        session.flush()
        session.state.await { it == ConnectionState.Open }
        session.send("still here")
        assertEquals(Frame.Text("still here"), withTimeout(10.seconds) { session.incoming.take(1).toList() }.single())

        session.close()
        session.awaitClosed()
        collector.join()
        assertFailsWith<TetherError.Closed> { session.pause() }
    }

    @Test
    fun badArgumentsAreTypedErrorsWithTheCoreMessage() = runBlocking {
        val bad = assertFailsWith<TetherError.InvalidArgument> { client.connect("http://127.0.0.1:1/") }
        assertTrue(bad.message!!.isNotEmpty())
        val strict = TetherClient { queue { maxMessages = 0 } }
        assertFailsWith<TetherError.InvalidArgument> { strict.connect(server.url) }
        strict.close()

        val session = client.connect(server.url)
        assertFailsWith<TetherError.InvalidArgument> { session.close(1005) }
        assertFailsWith<TetherError.InvalidArgument> { session.close(70_000) }
        assertFailsWith<TetherError.InvalidArgument> { session.setHeader("Sec-WebSocket-Key", "x") }
        session.close()
        session.awaitClosed()
    }
}
