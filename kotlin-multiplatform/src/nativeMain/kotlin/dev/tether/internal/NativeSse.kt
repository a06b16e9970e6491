@file:OptIn(ExperimentalForeignApi::class)

package dev.tether.internal

import cnames.structs.sse_client
import dev.tether.TetherError
import dev.tether.cinterop.WS_TIMEOUT
import dev.tether.cinterop.sse_close
import dev.tether.cinterop.sse_connect
import dev.tether.cinterop.sse_event
import dev.tether.cinterop.sse_free
import dev.tether.cinterop.sse_network_changed
import dev.tether.cinterop.sse_pause
import dev.tether.cinterop.sse_poll_event
import dev.tether.cinterop.sse_reconnect
import dev.tether.cinterop.sse_resume
import dev.tether.cinterop.sse_set_header
import kotlinx.cinterop.CPointer
import kotlinx.cinterop.CPointerVar
import kotlinx.cinterop.ExperimentalForeignApi
import kotlinx.cinterop.alloc
import kotlinx.cinterop.memScoped
import kotlinx.cinterop.ptr
import kotlinx.cinterop.readBytes
import kotlinx.cinterop.toKStringFromUtf8
import kotlinx.cinterop.value

/** Opens a native Server-Sent Events client (`sse_connect`). */
internal fun connectSse(url: String, optionsJson: String): RawSse {
    val pointer = memScoped {
        val out = alloc<CPointerVar<sse_client>>()
        orThrow(sse_connect(url, optionsJson, out.ptr))
        out.value ?: throw TetherError.Internal("sse_connect succeeded without a client")
    }
    Unreachables.sweep()
    return CinteropSse(pointer)
}

/** One native Server-Sent Events client through `sse_*`. */
internal class CinteropSse(val pointer: CPointer<sse_client>) : NotAWebSocket("SSE"), RawSse {
    override fun drain(into: MutableList<NativeEvent>, max: Int) = memScoped {
        val event = alloc<sse_event>()
        for (n in 0 until max) {
            if (orThrow(sse_poll_event(pointer, 0, event.ptr)) == WS_TIMEOUT) break
            val decoded = decode(event)
            into.add(decoded)
            // The last event: another poll would fail with WS_ERR_CLOSED.
            if (decoded === NativeEvent.Terminated) break
        }
    }

    /** Copies the event out of the core's memory (valid until the next poll). */
    private fun decode(e: sse_event): NativeEvent {
        val data = e.data
        val text = if (data == null || e.len == 0uL) "" else data.readBytes(e.len.toInt()).decodeToString()
        return SseNativeEvent.decode(
            kind = e.kind.value.toInt(),
            state = e.state.value.toInt(),
            type = e.type?.toKStringFromUtf8(),
            id = e.id?.toKStringFromUtf8(),
            data = text,
            error = e.error,
            attempt = e.attempt.toInt(),
            delayMs = e.delay_ms.toLong(),
        )
    }

    override fun free() = sse_free(pointer)

    override fun close(code: Int, reason: String) {
        orThrow(sse_close(pointer))
    }

    override fun pause() {
        orThrow(sse_pause(pointer))
    }

    override fun resume() {
        orThrow(sse_resume(pointer))
    }

    override fun networkChanged(available: Boolean) {
        orThrow(sse_network_changed(pointer, if (available) 1 else 0))
    }

    override fun reconnect() {
        orThrow(sse_reconnect(pointer))
    }

    override fun setHeader(name: String, value: String?) {
        orThrow(sse_set_header(pointer, name, value))
    }
}
