package dev.tether

import dev.tether.testing.EchoServer
import dev.tether.testing.await
import dev.tether.testing.eventually
import kotlin.concurrent.thread
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

/** Native clients are freed however a session ends: close, scope cancelled, forgotten. */
@Timeout(120)
class LeakTest {
    private val server = EchoServer.start()
    private val client = TetherClient { pingInterval = 0.seconds }

    @AfterEach
    fun stop() {
        client.close()
        server.kill()
    }

    @Test
    fun `1000 sessions opened and closed leave no native client behind`() = runBlocking<Unit> {
        val before = TetherClient.liveNativeClients()
        repeat(1000) { i ->
            val session = client.connect(server.url)
            // Every tenth runs a full open and echo; the rest are closed while connecting.
            if (i % 10 == 0) {
                session.send("ping $i")
                session.incoming.await { it == Frame.Text("ping $i") }
            }
            session.close()
            session.awaitClosed()
        }
        eventually(20.seconds, "live native clients back to $before") { TetherClient.liveNativeClients() == before }
        assertEquals(before, TetherClient.liveNativeClients())
    }

    @Test
    fun `cancelling the scope frees its sessions`() = runBlocking<Unit> {
        val before = TetherClient.liveNativeClients()
        val scope = CoroutineScope(Job())
        val sessions = (1..50).map { client.connect(server.url, scope) }
        sessions.last().state.await { it == ConnectionState.Open }
        scope.cancel()
        eventually(20.seconds, "live native clients back to $before") { TetherClient.liveNativeClients() == before }
        for (s in sessions) s.state.await { it == ConnectionState.Closed }
    }

    @Test
    fun `sessions the app forgot are closed and freed by the cleaner`() = runBlocking<Unit> {
        val before = TetherClient.liveNativeClients()
        openAndForget(20)
        eventually(30.seconds, "forgotten sessions freed") {
            System.gc()
            TetherClient.liveNativeClients() == before
        }
        eventually(10.seconds, "server connections closed") { server.openConnections == 0 }
    }

    @Test
    fun `calls racing the close never reach a freed native client`() = runBlocking<Unit> {
        val before = TetherClient.liveNativeClients()
        repeat(20) {
            val session = client.connect(server.url)
            val reader = launch { session.incoming.collect {} }
            val callers = (1..3).map {
                thread {
                    repeat(2_000) {
                        session.trySend("x")
                        try {
                            session.stats()
                        } catch (e: TetherError.Closed) {
                            // Released: the handle refuses new calls instead of crashing.
                        }
                    }
                }
            }
            session.close()
            session.awaitClosed()
            callers.forEach { it.join(10_000) }
            reader.join()
        }
        eventually(20.seconds, "live native clients back to $before") { TetherClient.liveNativeClients() == before }
    }

    private fun openAndForget(n: Int) {
        repeat(n) { client.connect(server.url).trySend("hello") }
    }
}
