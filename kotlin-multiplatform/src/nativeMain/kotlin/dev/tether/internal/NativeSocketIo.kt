@file:OptIn(ExperimentalForeignApi::class)

package dev.tether.internal

import cnames.structs.sio_client
import dev.tether.TetherError
import dev.tether.cinterop.WS_ERR_QUEUE_FULL
import dev.tether.cinterop.WS_TIMEOUT
import dev.tether.cinterop.sio_ack_binary
import dev.tether.cinterop.sio_attachment
import dev.tether.cinterop.sio_close
import dev.tether.cinterop.sio_connect
import dev.tether.cinterop.sio_emit_binary
import dev.tether.cinterop.sio_event
import dev.tether.cinterop.sio_free
import dev.tether.cinterop.sio_join
import dev.tether.cinterop.sio_leave
import dev.tether.cinterop.sio_network_changed
import dev.tether.cinterop.sio_pause
import dev.tether.cinterop.sio_poll_event
import dev.tether.cinterop.sio_reconnect
import dev.tether.cinterop.sio_resume
import dev.tether.cinterop.sio_set_header
import kotlinx.cinterop.CPointer
import kotlinx.cinterop.CPointerVar
import kotlinx.cinterop.ExperimentalForeignApi
import kotlinx.cinterop.MemScope
import kotlinx.cinterop.ULongVar
import kotlinx.cinterop.UByteVar
import kotlinx.cinterop.alloc
import kotlinx.cinterop.allocArray
import kotlinx.cinterop.convert
import kotlinx.cinterop.memScoped
import kotlinx.cinterop.ptr
import kotlinx.cinterop.readBytes
import kotlinx.cinterop.set
import kotlinx.cinterop.toKStringFromUtf8
import kotlinx.cinterop.value

/** Opens a native Socket.IO client (`sio_connect`). */
internal fun connectSocketIo(url: String, optionsJson: String): RawSocketIo {
    val pointer = memScoped {
        val out = alloc<CPointerVar<sio_client>>()
        orThrow(sio_connect(url, optionsJson, out.ptr))
        out.value ?: throw TetherError.Internal("sio_connect succeeded without a client")
    }
    Unreachables.sweep()
    return CinteropSocketIo(pointer)
}

/** One native Socket.IO client through `sio_*`. */
internal class CinteropSocketIo(val pointer: CPointer<sio_client>) : NotAWebSocket("Socket.IO"), RawSocketIo {
    override fun drain(into: MutableList<NativeEvent>, max: Int) = memScoped {
        val event = alloc<sio_event>()
        for (n in 0 until max) {
            if (orThrow(sio_poll_event(pointer, 0, event.ptr)) == WS_TIMEOUT) break
            val decoded = decode(event)
            into.add(decoded)
            if (decoded === NativeEvent.Terminated) break
        }
    }

    /** Copies the event out of the core's memory (valid until the next poll). */
    private fun MemScope.decode(e: sio_event): NativeEvent {
        val count = e.attachments.toInt()
        val attachments = if (count == 0) emptyList() else {
            val data = alloc<CPointerVar<UByteVar>>()
            val len = alloc<ULongVar>()
            List(count) { i ->
                orThrow(sio_attachment(pointer, i.convert(), data.ptr, len.ptr))
                data.value?.readBytes(len.value.toInt()) ?: ByteArray(0)
            }
        }
        val text = e.data?.readBytes(e.len.toInt())?.decodeToString()
        return SioNativeEvent.decode(
            kind = e.kind.value.toInt(),
            state = e.state.value.toInt(),
            namespace = e.nsp?.toKStringFromUtf8(),
            name = e.name?.toKStringFromUtf8(),
            data = text,
            ackId = e.ack_id.toLong(),
            error = e.error,
            attempt = e.attempt.toInt(),
            delayMs = e.delay_ms.toLong(),
            recovered = e.recovered.toInt() != 0,
            attachments = attachments,
        )
    }

    override fun free() = sio_free(pointer)

    override fun join(namespace: String, authJson: String?) {
        orThrow(sio_join(pointer, namespace, authJson))
    }

    override fun leave(namespace: String) {
        orThrow(sio_leave(pointer, namespace))
    }

    override fun emit(namespace: String, event: String, argsJson: String, attachments: List<ByteArray>, wantAck: Boolean): Long? =
        memScoped {
            val id = alloc<ULongVar>()
            val status = withAttachments(attachments) { datas, lens, n ->
                sio_emit_binary(pointer, namespace, event, argsJson, datas, lens, n, if (wantAck) id.ptr else null)
            }
            if (status == WS_ERR_QUEUE_FULL) return@memScoped null
            orThrow(status)
            if (wantAck) id.value.toLong() else 0L
        }

    override fun ack(namespace: String, ackId: Long, argsJson: String, attachments: List<ByteArray>): Boolean =
        memScoped {
            val status = withAttachments(attachments) { datas, lens, n ->
                sio_ack_binary(pointer, namespace, ackId.toULong(), argsJson, datas, lens, n)
            }
            if (status == WS_ERR_QUEUE_FULL) return@memScoped false
            orThrow(status)
            true
        }

    /** Copies [attachments] into C memory of this scope (the core copies them again). */
    private inline fun MemScope.withAttachments(
        attachments: List<ByteArray>,
        call: (CPointer<CPointerVar<UByteVar>>?, CPointer<ULongVar>?, ULong) -> Int,
    ): Int {
        if (attachments.isEmpty()) return call(null, null, 0uL)
        val datas = allocArray<CPointerVar<UByteVar>>(attachments.size)
        val lens = allocArray<ULongVar>(attachments.size)
        attachments.forEachIndexed { i, bytes ->
            val copy = allocArray<UByteVar>(bytes.size.coerceAtLeast(1))
            bytes.forEachIndexed { j, b -> copy[j] = b.toUByte() }
            datas[i] = copy
            lens[i] = bytes.size.toULong()
        }
        return call(datas, lens, attachments.size.toULong())
    }

    override fun close(code: Int, reason: String) {
        orThrow(sio_close(pointer))
    }

    override fun pause() {
        orThrow(sio_pause(pointer))
    }

    override fun resume() {
        orThrow(sio_resume(pointer))
    }

    override fun networkChanged(available: Boolean) {
        orThrow(sio_network_changed(pointer, if (available) 1 else 0))
    }

    override fun reconnect() {
        orThrow(sio_reconnect(pointer))
    }

    override fun setHeader(name: String, value: String?) {
        orThrow(sio_set_header(pointer, name, value))
    }
}
