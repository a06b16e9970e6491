package dev.tether.internal

import dev.tether.TetherError
import dev.tether.TetherStats
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

/** The in-flight counter: a native client is freed once, never under a call, and no call reaches it after. */
class GuardedClientTest {
    /** Counts frees; a send on a freed client is recorded as a use after free. */
    private class CountingClient : RawClient {
        val frees = AtomicInteger(0)
        val usedAfterFree = AtomicBoolean(false)
        val sends = AtomicInteger(0)

        /** Set by a test to hold a send in flight. */
        @Volatile
        var inSend: (() -> Unit)? = null

        override fun sendText(text: String): Boolean {
            if (frees.get() != 0) usedAfterFree.set(true)
            inSend?.invoke()
            if (frees.get() != 0) usedAfterFree.set(true)
            sends.incrementAndGet()
            return true
        }

        override fun free() {
            frees.incrementAndGet()
        }

        override fun sendBinary(data: ByteArray): Boolean = sendText("")
        override fun sendTrackedText(text: String): Long? = null
        override fun sendTrackedBinary(data: ByteArray): Long? = null
        override fun ack(id: Long) {}
        override fun outboxPending(): Long = 0
        override fun close(code: Int, reason: String) {}
        override fun pause() {}
        override fun resume() {}
        override fun networkChanged(available: Boolean) {}
        override fun reconnect() {}
        override fun flush() {}
        override fun setHeader(name: String, value: String?) {}
        override fun stats(): TetherStats = error("not used")
        override fun drain(into: MutableList<NativeEvent>, max: Int) {}
    }

    @Test
    fun `calls reach the client until it is destroyed, then throw Closed, and it is freed once`() {
        val raw = CountingClient()
        val freed = AtomicInteger(0)
        val client = GuardedClient(raw) { freed.incrementAndGet() }
        assertTrue(client.sendText("a"))
        assertTrue(client.sendText("b"))
        assertEquals(0, raw.frees.get())
        client.destroy()
        assertEquals(1, raw.frees.get())
        assertEquals(1, freed.get())
        repeat(3) { assertThrows<TetherError.Closed> { client.sendText("late") } }
        client.destroy()
        assertEquals(1, raw.frees.get(), "a second destroy or a refused call freed it again")
        assertEquals(2, raw.sends.get())
        assertFalse(raw.usedAfterFree.get())
    }

    @Test
    fun `a call in flight delays the free until it returns`() {
        val raw = CountingClient()
        val client = GuardedClient(raw) {}
        val inside = CountDownLatch(1)
        val proceed = CountDownLatch(1)
        raw.inSend = {
            inside.countDown()
            proceed.await(10, TimeUnit.SECONDS)
        }
        val sender = thread { client.sendText("held") }
        assertTrue(inside.await(10, TimeUnit.SECONDS))
        client.destroy()
        assertEquals(0, raw.frees.get(), "freed under a call in flight")
        proceed.countDown()
        sender.join(10_000)
        assertFalse(sender.isAlive)
        assertEquals(1, raw.frees.get())
        assertFalse(raw.usedAfterFree.get())
    }

    @Test
    fun `senders racing the destroy never reach a freed client, and it is freed exactly once`() {
        repeat(50) { round ->
            val raw = CountingClient()
            val client = GuardedClient(raw) {}
            val start = CountDownLatch(1)
            val senders = List(3) {
                thread {
                    start.await()
                    for (i in 0 until 2_000) {
                        try {
                            client.sendText("x")
                        } catch (e: TetherError.Closed) {
                            // Released: every later call is refused too.
                        }
                    }
                }
            }
            start.countDown()
            client.destroy()
            senders.forEach { it.join(30_000) }
            assertTrue(senders.none { it.isAlive }, "round $round: a sender hung")
            assertEquals(1, raw.frees.get(), "round $round: freed ${raw.frees.get()} times")
            assertFalse(raw.usedAfterFree.get(), "round $round: a call reached the freed client")
            assertThrows<TetherError.Closed> { client.sendText("after") }
        }
    }
}
