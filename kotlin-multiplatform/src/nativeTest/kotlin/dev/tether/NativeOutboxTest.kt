@file:OptIn(ExperimentalForeignApi::class)

package dev.tether

import dev.tether.testing.EchoServerProcess
import dev.tether.testing.await
import dev.tether.testing.connectWhenOutboxFree
import dev.tether.testing.eventually
import dev.tether.testing.outboxScenario
import kotlin.concurrent.AtomicInt
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.cinterop.ExperimentalForeignApi
import kotlinx.cinterop.toKString
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import platform.posix.getenv
import platform.posix.getpid
import platform.posix.remove

/** The durable outbox through cinterop (`ws_send_tracked`, `ws_ack`, `ws_outbox_pending`, RESENT events). */
class NativeOutboxTest {
    private val server = EchoServerProcess.start()

    /** A fresh outbox file in the temp dir; removed (with SQLite's side files) after the test. */
    private val outboxPath: String = run {
        val dir = getenv("TMPDIR")?.toKString() ?: "/tmp"
        "$dir/tether-outbox-${getpid()}-${ids.incrementAndGet()}.db".also(::removeOutbox)
    }

    @AfterTest
    fun stop() {
        server.close()
        removeOutbox(outboxPath)
    }

    @Test
    fun trackedMessagesGoOutAgainAfterTheServerRestartsReportedAsResent() = runBlocking {
        outboxScenario(server.url, outboxPath) {
            server.kill()
            server.start()
        }
    }

    @Test
    fun aSessionReopenedOnTheSameOutboxSendsWhatWasLeft() = runBlocking {
        val client = TetherClient {
            reconnect {
                initialDelay = 50.milliseconds
                maxDelay = 200.milliseconds
                jitter = 0.0
            }
            outbox { path = outboxPath }
        }
        try {
            server.kill()
            val first = client.connect(server.url)
            first.state.await { it is ConnectionState.Reconnecting }
            first.send("left 1")
            val tracked = first.sendTracked(byteArrayOf(2))
            assertEquals(2L, first.pendingOutbox())
            first.close()
            // Its native client is freed by then; the core lets go of the file a few ms later.
            withTimeout(10.seconds) { first.awaitClosed() }

            val second = client.connectWhenOutboxFree(server.url)
            assertEquals(2L, second.pendingOutbox(), "loaded from the file")
            server.start()
            val frames = withTimeout(10.seconds) { second.incoming.take(2).toList() }
            assertEquals(listOf(Frame.Text("left 1"), Frame.Binary(byteArrayOf(2))), frames)
            val resent = second.events.filterIsInstance<TetherEvent.Resent>().await { true }
            assertEquals(listOf(tracked), resent.ids)
            eventually(what = "only the tracked message left") { second.pendingOutbox() == 1L }
            second.ack(tracked)
            assertEquals(0L, second.pendingOutbox())
            assertFailsWith<TetherError.InvalidArgument> { second.ack(tracked) }
            assertTrue(second.sendTracked("later") > tracked, "ids grow across sessions")
            second.close()
            withTimeout(10.seconds) { second.awaitClosed() }
        } finally {
            client.close()
        }
    }

    @Test
    fun outboxCallsWithoutAnOutboxAreInvalidArguments() = runBlocking {
        val client = TetherClient()
        try {
            val session = client.connect(server.url)
            assertFailsWith<TetherError.InvalidArgument> { session.sendTracked("x") }
            assertFailsWith<TetherError.InvalidArgument> { session.ack(1) }
            assertFailsWith<TetherError.InvalidArgument> { session.pendingOutbox() }
            session.close()
            withTimeout(10.seconds) { session.awaitClosed() }
        } finally {
            client.close()
        }
    }

    private companion object {
        val ids = AtomicInt(0)

        fun removeOutbox(path: String) {
            for (suffix in listOf("", "-wal", "-shm", "-journal")) remove(path + suffix)
        }
    }
}
