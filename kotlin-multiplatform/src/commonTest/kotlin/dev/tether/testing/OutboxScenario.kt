// Shared by the JVM tests (OutboxTest) and the native tests (NativeOutboxTest): one outbox
// scenario against the echo server of each suite. Plain checks, no test framework: the
// JVM suite compiles commonTest with JUnit, the native one with kotlin.test.
package dev.tether.testing

import dev.tether.ConnectionState
import dev.tether.Frame
import dev.tether.OutboxFsync
import dev.tether.TetherClient
import dev.tether.TetherError
import dev.tether.TetherEvent
import dev.tether.TetherSession
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.withTimeout

/**
 * Untracked and tracked messages through the durable outbox at [outboxPath] (a file that
 * does not exist yet), against the echo server at [url]: both reach the server; the
 * untracked one leaves the outbox once the server has provably read it, the tracked ones
 * stay until acked; after [restartServer] (which must drop the connections and listen again
 * on the same port) the tracked ones go out again and a [TetherEvent.Resent] names them;
 * acked, the outbox empties; an unknown id is refused.
 */
suspend fun outboxScenario(url: String, outboxPath: String, restartServer: suspend () -> Unit) {
    val client = TetherClient {
        pingInterval = 5.seconds
        reconnect {
            initialDelay = 50.milliseconds
            maxDelay = 200.milliseconds
            jitter = 0.0
        }
        outbox {
            path = outboxPath
            fsync = OutboxFsync.BATCH
        }
    }
    try {
        val session = client.connect(url)
        session.state.await { it == ConnectionState.Open }
        session.send("plain")
        val first = session.sendTracked("tracked 1")
        val second = session.sendTracked(byteArrayOf(1, 2, 3))
        check(first in 1 until second) { "ids grow from 1: $first, $second" }
        val echoed = withTimeout(10.seconds) { session.incoming.take(3).toList() }
        val expected = listOf(Frame.Text("plain"), Frame.Text("tracked 1"), Frame.Binary(byteArrayOf(1, 2, 3)))
        check(echoed == expected) { "echoed $echoed" }
        // The untracked one leaves once a Ping written after it is answered.
        eventually(what = "the outbox holds the 2 tracked messages") { session.pendingOutbox() == 2L }

        restartServer()
        val resent = session.events.filterIsInstance<TetherEvent.Resent>().await(20.seconds) { true }
        check(resent.ids == listOf(first, second)) { "resent ${resent.ids}, tracked $first, $second" }
        val again = withTimeout(10.seconds) { session.incoming.take(2).toList() }
        check(again == expected.drop(1)) { "sent again: $again" }
        check(session.pendingOutbox() == 2L) { "tracked messages stay until acked" }

        session.ack(first)
        session.ack(second)
        eventually(what = "an empty outbox after the acks") { session.pendingOutbox() == 0L }
        val twice = runCatching { session.ack(first) }.exceptionOrNull()
        check(twice is TetherError.InvalidArgument) { "a second ack of $first gave $twice" }
        check(session.sendTracked("later") > second) { "ids keep growing" }
        check(withTimeout(10.seconds) { session.incoming.take(1).toList() } == listOf(Frame.Text("later")))

        session.close()
        withTimeout(10.seconds) { session.awaitClosed() }
    } finally {
        client.close()
    }
}

/**
 * Connects to [url], retrying (every 10 ms, for at most [timeout]) while the outbox file is
 * still "in use" by a session that has just ended. The core lets go of the file a few
 * milliseconds after that session's native client was freed, so a connect right after
 * [TetherSession.awaitClosed] can be refused; any other failure is thrown at once.
 */
suspend fun TetherClient.connectWhenOutboxFree(url: String, timeout: Duration = 5.seconds): TetherSession {
    val start = TimeSource.Monotonic.markNow()
    for (attempt in 0 until MAX_ATTEMPTS) {
        try {
            return connect(url)
        } catch (e: TetherError.InvalidArgument) {
            if ("in use" !in e.message.orEmpty() || start.elapsedNow() > timeout) throw e
        }
        delay(10)
    }
    error("the outbox was still in use after $MAX_ATTEMPTS attempts")
}

private const val MAX_ATTEMPTS = 500
