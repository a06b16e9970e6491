package dev.tether.testing

import java.io.BufferedInputStream
import java.io.BufferedOutputStream
import java.io.DataInputStream
import java.io.EOFException
import java.io.IOException
import java.io.OutputStream
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.net.SocketException
import java.security.MessageDigest
import java.util.Base64
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

/**
 * A small RFC 6455 server on 127.0.0.1 for the tests: a real socket, a real handshake, real
 * frames (masked from the client, unmasked back, fragments reassembled, Ping answered).
 *
 * It echoes every text and binary message. Text commands change its behaviour:
 * `close:CODE:REASON` closes with that code, `drop` hangs up without a close handshake,
 * `blast:N:SIZE` sends N binary messages of SIZE bytes in one write (benchmarks).
 */
class EchoServer private constructor(
    private val server: ServerSocket,
    /** When set, every upgrade is refused with this HTTP status. */
    private val refuseWith: Int?,
    /** Delay before the server answers an upgrade (to observe Connecting). */
    private val handshakeDelayMs: Long,
    /** Delay before the server answers a close the client started (to observe Closing). */
    private val closeAnswerDelayMs: Long,
) : AutoCloseable {
    val port: Int = server.localPort
    val url: String get() = "ws://127.0.0.1:$port/echo"

    /** Text messages received, in order, across connections (commands included). */
    val receivedTexts = CopyOnWriteArrayList<String>()

    /** Request headers (lower-case names) of each accepted handshake, in order. */
    val handshakes = CopyOnWriteArrayList<Map<String, String>>()

    /** Close codes received from clients. */
    val closeCodes = CopyOnWriteArrayList<Int>()

    private val sockets = ConcurrentHashMap.newKeySet<Socket>()
    private val connectionIds = AtomicInteger()

    init {
        thread(name = "echo-accept-$port", isDaemon = true) { acceptLoop() }
    }

    private fun acceptLoop() {
        while (!server.isClosed) {
            val socket = try {
                server.accept()
            } catch (e: IOException) {
                return
            }
            sockets += socket
            thread(name = "echo-conn-$port-${connectionIds.incrementAndGet()}", isDaemon = true) {
                try {
                    serve(socket)
                } catch (e: IOException) {
                    // Killed, or the client went away.
                } finally {
                    sockets -= socket
                    socket.close()
                }
            }
        }
    }

    private fun serve(socket: Socket) {
        socket.tcpNoDelay = true
        val input = DataInputStream(BufferedInputStream(socket.getInputStream(), 64 * 1024))
        val output = BufferedOutputStream(socket.getOutputStream(), 64 * 1024)
        val headers = readRequest(input)
        refuseWith?.let {
            output.write("HTTP/1.1 $it Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".toByteArray())
            output.flush()
            return
        }
        val key = headers["sec-websocket-key"] ?: throw IOException("no Sec-WebSocket-Key")
        val accept = Base64.getEncoder().encodeToString(
            MessageDigest.getInstance("SHA-1").digest((key + GUID).toByteArray()),
        )
        val protocol = headers["sec-websocket-protocol"]?.split(',')?.map { it.trim() }?.firstOrNull()
        val response = buildString {
            append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
            append("Sec-WebSocket-Accept: $accept\r\n")
            if (protocol != null) append("Sec-WebSocket-Protocol: $protocol\r\n")
            append("\r\n")
        }
        handshakes += headers
        if (handshakeDelayMs > 0) Thread.sleep(handshakeDelayMs)
        output.write(response.toByteArray())
        output.flush()

        var message = java.io.ByteArrayOutputStream()
        var messageOpcode = 0
        val closeSent = booleanArrayOf(false)
        while (true) {
            val b0 = input.readUnsignedByte()
            val b1 = input.readUnsignedByte()
            val fin = b0 and 0x80 != 0
            val opcode = b0 and 0x0F
            var len = (b1 and 0x7F).toLong()
            if (len == 126L) len = input.readUnsignedShort().toLong()
            if (len == 127L) len = input.readLong()
            val mask = ByteArray(4)
            if (b1 and 0x80 != 0) input.readFully(mask)
            val payload = ByteArray(len.toInt())
            input.readFully(payload)
            if (b1 and 0x80 != 0) for (i in payload.indices) payload[i] = (payload[i].toInt() xor mask[i and 3].toInt()).toByte()
            when (opcode) {
                0x9 -> writeFrame(output, 0xA, payload)
                0xA -> {}
                0x8 -> {
                    val code = if (payload.size >= 2) ((payload[0].toInt() and 0xFF) shl 8) or (payload[1].toInt() and 0xFF) else 1005
                    closeCodes += code
                    // Answer a close the client started; ours was answered already.
                    if (!closeSent[0]) {
                        if (closeAnswerDelayMs > 0) Thread.sleep(closeAnswerDelayMs)
                        writeFrame(output, 0x8, payload.copyOfRange(0, minOf(2, payload.size)))
                    }
                    return
                }
                else -> {
                    if (opcode != 0) messageOpcode = opcode
                    message.write(payload)
                    if (fin) {
                        val bytes = message.toByteArray()
                        message = java.io.ByteArrayOutputStream()
                        if (!onMessage(socket, output, messageOpcode, bytes, closeSent)) return
                    }
                }
            }
        }
    }

    /** Handles one message; false ends the connection. */
    private fun onMessage(socket: Socket, output: OutputStream, opcode: Int, bytes: ByteArray, closeSent: BooleanArray): Boolean {
        if (opcode != 0x1) {
            writeFrame(output, 0x2, bytes)
            return true
        }
        val text = bytes.decodeToString()
        receivedTexts += text
        when {
            text == "drop" -> {
                socket.setSoLinger(true, 0)
                socket.close()
                return false
            }
            text.startsWith("close:") -> {
                val (_, code, reason) = text.split(':', limit = 3)
                val c = code.toInt()
                writeFrame(output, 0x8, byteArrayOf((c shr 8).toByte(), c.toByte()) + reason.toByteArray())
                closeSent[0] = true
                // Wait (bounded by the socket timeout) for the client's answer, then hang up.
                socket.soTimeout = 2_000
                return true
            }
            text.startsWith("blast:") -> {
                val (_, n, size) = text.split(':')
                val payload = ByteArray(size.toInt()) { it.toByte() }
                repeat(n.toInt()) { writeFrame(output, 0x2, payload, flush = false) }
                output.flush()
            }
            else -> writeFrame(output, 0x1, bytes)
        }
        return true
    }

    private fun writeFrame(output: OutputStream, opcode: Int, payload: ByteArray, flush: Boolean = true) {
        output.write(0x80 or opcode)
        when {
            payload.size < 126 -> output.write(payload.size)
            payload.size < 65536 -> {
                output.write(126)
                output.write(payload.size shr 8)
                output.write(payload.size)
            }
            else -> {
                output.write(127)
                for (shift in 56 downTo 0 step 8) output.write((payload.size.toLong() shr shift).toInt())
            }
        }
        output.write(payload)
        if (flush) output.flush()
    }

    private fun readRequest(input: DataInputStream): Map<String, String> {
        val bytes = java.io.ByteArrayOutputStream()
        var tail = 0
        while (tail != 0x0D0A0D0A) {
            val b = input.read()
            if (b < 0) throw EOFException("handshake cut short")
            bytes.write(b)
            tail = (tail shl 8) or b
            if (bytes.size() > 16 * 1024) throw IOException("handshake too long")
        }
        return bytes.toString(Charsets.ISO_8859_1).split("\r\n").drop(1)
            .mapNotNull { line -> line.indexOf(':').takeIf { it > 0 }?.let { line.substring(0, it).trim().lowercase() to line.substring(it + 1).trim() } }
            .toMap()
    }

    /** Connections open right now. */
    val openConnections: Int get() = sockets.size

    /** Stops listening and kills every connection without a close frame (RST). */
    fun kill() {
        server.close()
        for (s in sockets) {
            try {
                s.setSoLinger(true, 0)
                s.close()
            } catch (e: SocketException) {
                // Closed already.
            }
        }
    }

    override fun close() = kill()

    companion object {
        private const val GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

        /** Starts on [port] (0: any free port), retrying a port that is still being released. */
        fun start(
            port: Int = 0,
            refuseWith: Int? = null,
            handshakeDelayMs: Long = 0,
            closeAnswerDelayMs: Long = 0,
        ): EchoServer {
            var last: IOException? = null
            repeat(100) {
                val s = ServerSocket()
                s.reuseAddress = true
                try {
                    s.bind(InetSocketAddress("127.0.0.1", port), 128)
                    return EchoServer(s, refuseWith, handshakeDelayMs, closeAnswerDelayMs)
                } catch (e: IOException) {
                    s.close()
                    last = e
                    Thread.sleep(20)
                }
            }
            throw last!!
        }
    }
}
