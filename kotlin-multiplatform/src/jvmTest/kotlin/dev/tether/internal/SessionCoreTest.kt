package dev.tether.internal

import dev.tether.ConnectionState
import dev.tether.Frame
import dev.tether.TetherConfig
import dev.tether.TetherError
import dev.tether.TetherEvent
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlinx.coroutines.ExperimentalCoroutinesApi
import kotlinx.coroutines.launch
import kotlinx.coroutines.test.runTest
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/** The session logic between the poller and the app, on virtual time (no native client). */
@OptIn(ExperimentalCoroutinesApi::class)
class SessionCoreTest {
    private fun core(buffer: Int, scope: kotlinx.coroutines.test.TestScope) =
        SessionCore(TetherConfig().apply { incomingBuffer = buffer }, null, scope.testScheduler.timeSource)

    @Test
    fun `a full incoming buffer holds the poller back for as long as the app needs`() = runTest {
        val core = core(1, this)
        core.deliver(NativeEvent.Text("a"))
        val poller = launch { core.deliver(NativeEvent.Text("b")) }
        testScheduler.advanceTimeBy(10.minutes)
        assertFalse(poller.isCompleted, "a frame was dropped while the app was merely slow")
        assertEquals(Frame.Text("a"), core.frames.receive())
        assertEquals(Frame.Text("b"), core.frames.receive())
        poller.join()
    }

    @Test
    fun `a drain held by a full buffer goes on once the app took half of it, in order`() = runTest {
        val core = core(4, this)
        for (i in 1..4) assertTrue(core.tryDeliver(NativeEvent.Text("$i")))
        assertFalse(core.tryDeliver(NativeEvent.Text("5")), "a full buffer took a frame")
        val poller = launch { core.deliver(NativeEvent.Text("5")) }
        testScheduler.runCurrent()
        assertEquals(Frame.Text("1"), core.frames.receive())
        testScheduler.runCurrent()
        assertFalse(poller.isCompleted, "woken for one frame taken, not at half the buffer")
        assertEquals(Frame.Text("2"), core.frames.receive())
        testScheduler.runCurrent()
        assertTrue(poller.isCompleted, "still held with half the buffer free")
        for (i in 3..5) assertEquals(Frame.Text("$i"), core.frames.receive())
        assertTrue(core.frames.isEmpty)
    }

    @Test
    fun `an abandoned session lets a drain held by a full buffer go`() = runTest {
        val core = core(1, this)
        core.deliver(NativeEvent.Text("a"))
        val poller = launch { core.deliver(NativeEvent.Text("b")) }
        testScheduler.advanceTimeBy(1.minutes)
        assertFalse(poller.isCompleted)
        core.abandon()
        testScheduler.runCurrent()
        assertTrue(poller.isCompleted, "the drain still waits for an app that left")
    }

    @Test
    fun `after a close, frames nobody takes are dropped after the drain time`() = runTest {
        val core = core(1, this)
        core.deliver(NativeEvent.Text("kept"))
        val poller = launch { core.deliver(NativeEvent.Text("dropped")) }
        testScheduler.advanceTimeBy(1.minutes)
        assertFalse(poller.isCompleted)
        core.close(1000, "") // no native client: counts as closed already
        testScheduler.advanceTimeBy(SessionCore.CLOSE_DRAIN - 200.milliseconds)
        assertFalse(poller.isCompleted, "dropped before the drain time")
        testScheduler.advanceTimeBy(400.milliseconds)
        assertTrue(poller.isCompleted, "the poller is still blocked after the drain time")
        assertEquals(Frame.Text("kept"), core.frames.receive())
        assertTrue(core.frames.isEmpty)
    }

    @Test
    fun `events map to states and typed errors, and terminated ends everything`() = runTest {
        val core = core(8, this)
        core.deliver(NativeEvent.State(1))
        assertEquals(ConnectionState.Open, core.state.value)
        core.deliver(NativeEvent.State(2))
        assertEquals(ConnectionState.Reconnecting(0, Duration.INFINITE), core.state.value)
        core.deliver(NativeEvent.Reconnecting(3, 1500))
        assertEquals(ConnectionState.Reconnecting(3, 1500.milliseconds), core.state.value)
        core.deliver(NativeEvent.Error(-108, "no pong"))
        core.deliver(NativeEvent.Error(503, "busy"))
        core.deliver(NativeEvent.Closed(1006, ""))
        core.deliver(NativeEvent.Resent(longArrayOf(3, 1L shl 40)))
        core.deliver(NativeEvent.State(4))
        core.deliver(NativeEvent.Terminated)
        val events = buildList { for (e in core.events) add(e) }
        assertEquals(TetherEvent.Reconnecting(3, 1500.milliseconds), events[0])
        assertTrue((events[1] as TetherEvent.Failed).error is TetherError.HeartbeatTimeout)
        assertEquals(503, ((events[2] as TetherEvent.Failed).error as TetherError.HttpStatus).status)
        assertEquals(TetherEvent.Closed(1006, ""), events[3])
        assertEquals(TetherEvent.Resent(listOf(3L, 1L shl 40)), events[4])
        assertEquals(TetherEvent.Terminated, events.last())
        assertTrue(core.frames.isClosedForReceive)
        // The job (awaitClosed) completes once the binding has freed the native client.
        assertFalse(core.job.isCompleted)
        core.released()
        assertTrue(core.job.isCompleted)
        assertEquals(ConnectionState.Closed, core.state.value)
    }
}
