package dev.tether

import dev.tether.testing.EchoServer
import dev.tether.testing.await
import dev.tether.testing.eventually
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

/** Every session of the process is served by one poller thread, not a thread each. */
@Timeout(300)
class OnePollerTest {
    private val server = EchoServer.start()
    private val client = TetherClient { pingInterval = 0.seconds }

    @AfterEach
    fun stop() {
        client.close()
        server.kill()
    }

    /** The JVM's threads but the echo server's (which has one per connection). */
    private fun threadsOutsideTheServer(): Set<String> =
        Thread.getAllStackTraces().keys.map { it.name }.filterNot { it.startsWith("echo-") }.toSet()

    @Test
    fun `1000 open sessions add at most a couple of threads`() = runBlocking<Unit> {
        // One session first, so that what any coroutine app has (Dispatchers.Default's
        // workers, the timer thread) exists before counting.
        client.connect(server.url).use { warmUp ->
            warmUp.awaitOpen(30.seconds)
            warmUp.send("warm")
            warmUp.incoming.await { it == Frame.Text("warm") }
        }
        val before = threadsOutsideTheServer()
        val sessions = List(1000) { client.connect(server.url) }
        for (session in sessions) session.awaitOpen(60.seconds)
        sessions.forEachIndexed { i, session -> if (i % 100 == 0) session.send("echo $i") }
        sessions.forEachIndexed { i, session ->
            if (i % 100 == 0) session.incoming.await(30.seconds) { it == Frame.Text("echo $i") }
        }
        val during = threadsOutsideTheServer()
        val added = during - before
        assertTrue(added.size <= 3, "1000 sessions added ${added.size} threads: $added")
        assertTrue(sessions.all { it.state.value == ConnectionState.Open })

        for (session in sessions) session.close()
        withTimeout(60.seconds) { for (session in sessions) session.awaitClosed() }
        eventually(what = "every native client freed") { TetherClient.liveNativeClients() == 0L }
        assertEquals(1000 + 1, server.closeCodes.count { it == 1000 })
    }
}
