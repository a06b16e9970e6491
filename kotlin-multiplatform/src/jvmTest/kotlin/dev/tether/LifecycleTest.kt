package dev.tether

import dev.tether.testing.EchoServer
import dev.tether.testing.await
import dev.tether.testing.eventually
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.flow.transformWhile
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

/** State sequence, reconnection with the queue, pause/resume and hints, close. */
@Timeout(60)
class LifecycleTest {
    private var server = EchoServer.start()
    private val client = TetherClient {
        pingInterval = 2.seconds
        pongTimeout = 1.seconds
        reconnect {
            initialDelay = 50.milliseconds
            maxDelay = 200.milliseconds
            jitter = 0.0
        }
    }

    @AfterEach
    fun stop() {
        client.close()
        server.kill()
    }

    private fun name(state: ConnectionState) = state::class.simpleName!!

    @Test
    fun `state goes Connecting, Open, Reconnecting, Open, Closing, Closed`() = runBlocking<Unit> {
        server.kill()
        server = EchoServer.start(handshakeDelayMs = 200)
        val session = client.connect(server.url)
        val seen = CopyOnWriteArrayList<ConnectionState>()
        // A StateFlow conflates: a collector sees a state only if it is still the value when the
        // collector runs, and even an Unconfined one does not always run at once (a CI run saw
        // Closing, set ~0.1 ms before Closed, vanish). So each state here lasts: the handshake
        // 200 ms, the backoff 50 ms, the server's answer to the close 300 ms.
        // The recorder ends itself once it has recorded Closed: joined, not cancelled, since its
        // last resumption may still be on its way from the poller thread when awaitClosed returns.
        val recorder = launch(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
            session.state.transformWhile { emit(it); it != ConnectionState.Closed }.collect { seen += it }
        }
        session.state.await { it == ConnectionState.Open }
        val port = server.port
        server.kill()
        session.state.await { it is ConnectionState.Reconnecting && it.attempt >= 1 }
        server = EchoServer.start(port, closeAnswerDelayMs = 300)
        session.state.await { it == ConnectionState.Open }
        session.send("close-me-politely")
        session.incoming.await { it == Frame.Text("close-me-politely") }
        session.close(1000, "bye")
        session.state.await { it == ConnectionState.Closed }
        session.awaitClosed()
        withTimeout(10.seconds) { recorder.join() }
        val names = seen.map(::name).fold(listOf<String>()) { acc, s -> if (acc.lastOrNull() == s) acc else acc + s }
        assertEquals(listOf("Connecting", "Open", "Reconnecting", "Open", "Closing", "Closed"), names, "seen: $seen")
        val reconnecting = seen.filterIsInstance<ConnectionState.Reconnecting>().first { it.attempt >= 1 }
        assertEquals(1, reconnecting.attempt)
        assertTrue(reconnecting.delay in 1.milliseconds..200.milliseconds, "delay ${reconnecting.delay}")
    }

    @Test
    fun `messages sent while the server is down arrive in order after it restarts`() = runBlocking<Unit> {
        val session = client.connect(server.url)
        session.state.await { it == ConnectionState.Open }
        val port = server.port
        server.kill()
        session.state.await { it is ConnectionState.Reconnecting }
        val queued = (1..50).map { "queued-$it" }
        for (m in queued) assertTrue(session.trySend(m), "trySend $m")
        session.send(byteArrayOf(9, 9))
        assertEquals(51L, session.stats().queuedMessages)
        delay(300) // a few failed attempts against the closed port
        server = EchoServer.start(port)
        val echoed = withTimeout(15.seconds) { session.incoming.take(51).toList() }
        assertEquals(queued.map { Frame.Text(it) } + Frame.Binary(byteArrayOf(9, 9)), echoed)
        assertEquals(queued, server.receivedTexts.toList())
        assertTrue(session.stats().reconnects >= 1)
        val events = mutableListOf<TetherEvent>()
        session.close()
        session.events.collect { events += it }
        assertTrue(events.any { it is TetherEvent.Reconnecting }, "$events")
        assertTrue(events.any { it is TetherEvent.Failed && it.error is TetherError.ConnectFailed }, "$events")
        assertEquals(TetherEvent.Terminated, events.last())
    }

    @Test
    fun `pause closes and holds, resume reconnects and delivers the queue`() = runBlocking<Unit> {
        val session = client.connect(server.url)
        session.state.await { it == ConnectionState.Open }
        session.pause()
        val paused = session.state.await { it is ConnectionState.Reconnecting } as ConnectionState.Reconnecting
        assertEquals(ConnectionState.Reconnecting(0, Duration.INFINITE), paused)
        eventually(what = "server saw the close") { server.closeCodes.isNotEmpty() }
        assertEquals(1001, server.closeCodes.single())
        assertTrue(session.trySend("while paused"))
        delay(400) // several backoff periods: a paused session must not reconnect
        assertEquals(1, server.handshakes.size)
        assertTrue(session.state.value is ConnectionState.Reconnecting)
        session.resume()
        session.state.await { it == ConnectionState.Open }
        assertEquals(Frame.Text("while paused"), session.incoming.await { true })
        assertEquals(2, server.handshakes.size)
        session.close()
    }

    @Test
    fun `network hints, setHeader and reconnect reach the core`() = runBlocking<Unit> {
        val session = client.connect(server.url)
        session.state.await { it == ConnectionState.Open }
        session.setHeader("X-Token", "second")
        session.reconnect()
        eventually(what = "second handshake") { server.handshakes.size == 2 }
        assertEquals("second", server.handshakes[1]["x-token"])
        session.state.await { it == ConnectionState.Open }

        // Offline: no attempts while the network is gone, at once when it returns.
        val port = server.port
        session.networkChanged(false)
        server.kill()
        session.state.await { it is ConnectionState.Reconnecting }
        server = EchoServer.start(port)
        delay(400)
        assertEquals(0, server.handshakes.size, "tried while offline")
        session.networkChanged(true)
        session.state.await { it == ConnectionState.Open }
        assertEquals(1, server.handshakes.size)
        assertThrows<TetherError.InvalidArgument> { session.setHeader("Bad Name", "x") }
        session.flush() // harmless with the default on_open flush
        session.close()
    }

    @Test
    fun `close ends incoming and events, and later calls fail typed`() = runBlocking<Unit> {
        val session = client.connect(server.url)
        session.state.await { it == ConnectionState.Open }
        assertThrows<TetherError.InvalidArgument> { session.close(1005, "reserved") }
        session.send("last")
        session.close(4000, "app done")
        session.close(4000, "twice is fine")
        val frames = withTimeout(10.seconds) { session.incoming.toList() }
        assertEquals(listOf(Frame.Text("last")), frames)
        val closed = session.events.filterIsInstance<TetherEvent.Closed>().await { true }
        assertEquals(4000, closed.code)
        session.awaitClosed()
        assertEquals(ConnectionState.Closed, session.state.value)
        assertEquals(listOf(4000), server.closeCodes.toList())
        assertFalse(session.trySend("after close"))
        assertThrows<TetherError.Closed> { runBlocking { session.send("after close") } }
        assertThrows<TetherError.Closed> { session.pause() }
    }

    @Test
    fun `a server close with 1000 ends the session, 1012 reconnects`() = runBlocking<Unit> {
        val session = client.connect(server.url)
        session.state.await { it == ConnectionState.Open }
        session.send("close:1012:restarting")
        session.state.await { it is ConnectionState.Reconnecting }
        session.state.await { it == ConnectionState.Open }
        session.send("close:1000:done")
        session.awaitClosed()
        val closes = session.events.filterIsInstance<TetherEvent.Closed>().take(2).toList()
        assertEquals(listOf(1012, 1000), closes.map { it.code })
    }

    @Test
    fun `a refused upgrade is a typed error and does not retry`() = runBlocking<Unit> {
        val refusing = EchoServer.start(refuseWith = 403)
        try {
            val session = client.connect(refusing.url)
            session.awaitClosed()
            val failure = session.events.filterIsInstance<TetherEvent.Failed>().await { true }
            val error = failure.error as TetherError.HttpStatus
            assertEquals(403, error.status)
        } finally {
            refusing.kill()
        }
    }
}
