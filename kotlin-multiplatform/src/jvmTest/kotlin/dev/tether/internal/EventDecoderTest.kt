package dev.tether.internal

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertSame
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/** The decoder of src/jni/wire.rs records, on records written here by hand (no native library). */
class EventDecoderTest {
    /** Appends one record (src/jni/wire.rs layout) at the buffer's position. */
    private fun EventDecoder.put(kind: Int, payload: ByteArray = ByteArray(0), closeCode: Int = 0) {
        val b = buffer
        b.put(kind.toByte()).put(0).putShort(closeCode.toShort()).putInt(0).putLong(0L).putInt(payload.size).put(payload)
    }

    private fun EventDecoder.decodeAll(): List<NativeEvent> {
        val length = buffer.position()
        val out = mutableListOf<NativeEvent>()
        decode(length, { error("nothing is pending") }) { out.add(it) }
        return out
    }

    @Test
    fun `texts, binaries and other events decode in order, each with its own bytes`() {
        val d = EventDecoder()
        d.put(Codes.WS_EVENT_TEXT, "hello".encodeToByteArray())
        d.put(Codes.WS_EVENT_BINARY, byteArrayOf(1, 2, 3))
        d.put(Codes.WS_EVENT_TEXT, "wörld 🌍".encodeToByteArray())
        d.put(Codes.WS_EVENT_TEXT)
        d.put(Codes.WS_EVENT_BINARY)
        d.put(Codes.WS_EVENT_CLOSED, "bye".encodeToByteArray(), closeCode = 1001)
        d.put(Codes.WS_EVENT_TEXT, "after".encodeToByteArray())
        d.put(Codes.WS_EVENT_TERMINATED)
        val events = d.decodeAll()
        assertEquals(8, events.size)
        assertEquals("hello", (events[0] as NativeEvent.Text).text)
        assertArrayEquals(byteArrayOf(1, 2, 3), (events[1] as NativeEvent.Binary).data)
        assertEquals("wörld 🌍", (events[2] as NativeEvent.Text).text)
        assertEquals("", (events[3] as NativeEvent.Text).text)
        assertEquals(0, (events[4] as NativeEvent.Binary).data.size)
        val closed = events[5] as NativeEvent.Closed
        assertEquals(1001, closed.code)
        assertEquals("bye", closed.reason)
        assertEquals("after", (events[6] as NativeEvent.Text).text)
        assertSame(NativeEvent.Terminated, events[7])
    }

    @Test
    fun `a text longer than any before it decodes whole`() {
        val d = EventDecoder()
        val long = "x".repeat(EventDecoder.INITIAL_BUFFER - 2 * EventDecoder.HEADER - 1)
        d.put(Codes.WS_EVENT_TEXT, "a".encodeToByteArray())
        d.put(Codes.WS_EVENT_TEXT, long.encodeToByteArray())
        val events = d.decodeAll()
        assertEquals("a", (events[0] as NativeEvent.Text).text)
        assertEquals(long, (events[1] as NativeEvent.Text).text)
        assertTrue(events.size == 2)
    }
}
