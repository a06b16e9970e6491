package dev.tether.internal

import dev.tether.Frame
import java.util.concurrent.ConcurrentHashMap
import kotlin.concurrent.thread
import kotlin.coroutines.cancellation.CancellationException
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.test.runTest
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

/** The queue between a session's drain (one producer) and the app's readers. */
class FrameBufferTest {
    @Test
    fun `it holds at most its capacity, in order, and reads what is left after a close`() = runTest {
        val frames = FrameBuffer(3)
        for (i in 1..3) assertTrue(frames.trySend(Frame.Text("$i")))
        assertFalse(frames.trySend(Frame.Text("4")), "a full buffer took a frame")
        assertEquals(Frame.Text("1"), frames.receive())
        assertTrue(frames.trySend(Frame.Text("4")))
        frames.close()
        assertTrue(frames.trySend(Frame.Text("late")), "after the end a frame is dropped, not refused")
        assertEquals(listOf("2", "3", "4"), frames.asFlow().toList().map { (it as Frame.Text).text })
        assertNull(frames.receiveOrNull())
        assertTrue(frames.isClosedForReceive)
    }

    @Test
    fun `tryReceive takes what waits, in order, without waiting, and makes room for a waiting drain`() = runBlocking {
        val frames = FrameBuffer(4)
        assertNull(frames.tryReceive(), "an empty buffer gave a frame")
        for (i in 1..4) assertTrue(frames.trySend(Frame.Text("$i")))
        val drain = launch(Dispatchers.Default) {
            while (!frames.trySend(Frame.Text("5"))) frames.awaitRoom(null)
        }
        delay(50) // most likely waiting for room by now; if not, it finds room at once
        assertEquals(Frame.Text("1"), frames.tryReceive())
        assertEquals(Frame.Text("2"), frames.tryReceive())
        withTimeout(10.seconds) { drain.join() } // half the capacity taken: the drain went on
        val rest = listOf(frames.tryReceive(), frames.tryReceive(), frames.tryReceive())
        assertEquals(listOf("3", "4", "5"), rest.map { (it as Frame.Text).text })
        assertNull(frames.tryReceive())
        frames.trySend(Frame.Text("last"))
        frames.close()
        assertEquals(Frame.Text("last"), frames.tryReceive(), "a frame put before the close was lost")
        assertNull(frames.tryReceive())
    }

    @Test
    fun `the take that makes room hands the drain's wakeup to signalRoom and does not resume the drain`() = runBlocking {
        val handed = mutableListOf<Wakeup>()
        val frames = FrameBuffer(2) { handed.add(it) }
        assertTrue(frames.trySend(Frame.Text("1")))
        assertTrue(frames.trySend(Frame.Text("2")))
        var resumed = false
        // Undispatched: it registers and suspends (the buffer is full) before launch returns.
        val drain = launch(start = CoroutineStart.UNDISPATCHED) {
            frames.awaitRoom(null)
            resumed = true
        }
        assertEquals(Frame.Text("1"), frames.tryReceive())
        assertEquals(1, handed.size, "the take that reached half the capacity handed no wakeup over")
        yield()
        assertFalse(resumed, "the take resumed the drain itself")
        handed.single().signal()
        withTimeout(10.seconds) { drain.join() }
        assertTrue(resumed)
    }

    @Test
    fun `a cancel drops what is buffered and ends every reader`() = runTest {
        val frames = FrameBuffer(4)
        frames.trySend(Frame.Text("dropped"))
        frames.cancel()
        assertNull(frames.receiveOrNull(rethrow = false))
        assertThrows<CancellationException> { frames.receive() }
    }

    @Test
    fun `a reader cancelled while it waits takes no frame with it`() = runBlocking {
        val frames = FrameBuffer(4)
        val waiting = launch(Dispatchers.Default) { frames.receive() }
        delay(100) // most likely waiting by now; if not, the frame must still not be lost
        waiting.cancel()
        waiting.join()
        frames.trySend(Frame.Text("kept"))
        assertEquals(Frame.Text("kept"), withTimeout(10.seconds) { frames.receive() })
    }

    @Test
    fun `readers on several threads share every frame once, each in order`() = runBlocking {
        val total = 200_000
        val frames = FrameBuffer(64)
        val seen = ConcurrentHashMap.newKeySet<Int>()
        val readers = (1..4).map {
            async(Dispatchers.Default) {
                var last = -1
                var count = 0
                while (true) {
                    val frame = frames.receiveOrNull() ?: break
                    val n = (frame as Frame.Text).text.toInt()
                    assertTrue(n > last, "a reader saw $n after $last")
                    assertTrue(seen.add(n), "$n was read twice")
                    last = n
                    count++
                }
                count
            }
        }
        // The drain: one producer, waiting for room as SessionCore.offer does.
        val producer = thread(name = "producer") {
            runBlocking {
                for (i in 0 until total) {
                    val frame = Frame.Text("$i")
                    while (!frames.trySend(frame)) frames.awaitRoom(null)
                }
                frames.close()
            }
        }
        val counts = withTimeout(60.seconds) { readers.awaitAll() }
        producer.join()
        assertEquals(total, counts.sum())
        assertEquals(total, seen.size)
    }
}
