package dev.tether.android

import java.io.DataInputStream
import java.io.IOException
import java.io.OutputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.security.MessageDigest
import java.util.Base64
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

/**
 * The least RFC 6455 server a real session needs, on 127.0.0.1: answers the upgrade, echoes
 * text and binary messages, answers Pings and Close frames; counts handshakes and records
 * the close codes clients sent.
 */
class LoopbackWebSocketServer : AutoCloseable {
    private val server = ServerSocket(0, 16, InetAddress.getLoopbackAddress())
    private val sockets = CopyOnWriteArrayList<Socket>()
    val url = "ws://127.0.0.1:${server.localPort}/echo"
    val handshakes = AtomicInteger()
    val closeCodes = CopyOnWriteArrayList<Int>()

    init {
        thread(name = "loopback-ws-accept", isDaemon = true) {
            while (!server.isClosed) {
                val socket = try {
                    server.accept()
                } catch (e: IOException) {
                    break
                }
                sockets += socket
                thread(name = "loopback-ws-connection", isDaemon = true) {
                    try {
                        socket.use { serve(it) }
                    } catch (e: IOException) {
                        // The client went away, or the server was closed.
                    }
                }
            }
        }
    }

    private fun serve(socket: Socket) {
        val input = DataInputStream(socket.getInputStream().buffered())
        val output = socket.getOutputStream()
        val key = readUpgrade(input)
        val accept = Base64.getEncoder().encodeToString(
            MessageDigest.getInstance("SHA-1").digest((key + WEBSOCKET_GUID).toByteArray()),
        )
        // Counted before the answer: a client that saw Open finds its handshake counted.
        handshakes.incrementAndGet()
        output.write(
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Accept: $accept\r\n\r\n").toByteArray(),
        )
        output.flush()
        while (true) {
            val first = input.readUnsignedByte()
            val second = input.readUnsignedByte()
            val opcode = first and 0x0F
            val length = when (val short = second and 0x7F) {
                126 -> input.readUnsignedShort().toLong()
                127 -> input.readLong()
                else -> short.toLong()
            }
            if (length > MAX_PAYLOAD) throw IOException("payload of $length bytes")
            val mask = ByteArray(4).also { if (second and 0x80 != 0) input.readFully(it) }
            val payload = ByteArray(length.toInt()).also { input.readFully(it) }
            for (i in payload.indices) payload[i] = (payload[i].toInt() xor mask[i % 4].toInt()).toByte()
            when (opcode) {
                OP_CLOSE -> {
                    val code = if (payload.size >= 2) (payload[0].toInt() and 0xFF shl 8) or (payload[1].toInt() and 0xFF) else 1005
                    closeCodes += code
                    writeFrame(output, OP_CLOSE, payload.copyOf(minOf(2, payload.size)))
                    return
                }
                OP_PING -> writeFrame(output, OP_PONG, payload)
                OP_PONG -> {}
                // Messages here are small and unfragmented: echo each frame as it is.
                else -> writeFrame(output, opcode, payload)
            }
        }
    }

    private fun readUpgrade(input: DataInputStream): String {
        val request = StringBuilder()
        while (!request.endsWith("\r\n\r\n")) {
            if (request.length > 16 * 1024) throw IOException("upgrade request too long")
            val byte = input.read()
            if (byte < 0) throw IOException("upgrade request cut short")
            request.append(byte.toChar())
        }
        return request.lineSequence()
            .map { it.split(':', limit = 2) }
            .firstOrNull { it.size == 2 && it[0].trim().equals("Sec-WebSocket-Key", ignoreCase = true) }
            ?.get(1)?.trim() ?: throw IOException("no Sec-WebSocket-Key")
    }

    private fun writeFrame(output: OutputStream, opcode: Int, payload: ByteArray) {
        output.write(0x80 or opcode)
        when {
            payload.size < 126 -> output.write(payload.size)
            else -> {
                output.write(126)
                output.write(payload.size shr 8)
                output.write(payload.size and 0xFF)
            }
        }
        output.write(payload)
        output.flush()
    }

    override fun close() {
        server.close()
        sockets.forEach { it.close() }
    }

    private companion object {
        const val WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        const val OP_CLOSE = 0x8
        const val OP_PING = 0x9
        const val OP_PONG = 0xA
        const val MAX_PAYLOAD = 65_535L
    }
}
