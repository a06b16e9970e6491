package dev.tether.testkit

import dev.tether.testkit.internal.Guarded
import dev.tether.testkit.internal.TestkitNative
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds

/**
 * A WebSocket server on 127.0.0.1 for unit tests, on a free port, with its own native thread
 * (Tether's Rust test kit). It echoes by default, answers each handshake with the next
 * [enqueue]d [HandshakeReply], records what clients send, and injects faults on command.
 * Every method is a plain blocking call from any thread, in effect when it returns.
 *
 * ```
 * TetherTestServer().use { server ->
 *     server.enqueue(HandshakeReply.Refuse(503, mapOf("Retry-After" to "1")))
 *     val session = TetherClient(TetherConfig().withTestTimers()).connect(server.url("/chat"))
 *     assertEquals("/chat", server.awaitRequest().path)
 * }
 * ```
 *
 * [close] stops the server and kills every connection; call it (or `use`) in each test.
 */
public class TetherTestServer(
    /** Serve `wss://` with a certificate from a CA made now ([caPem], [pinSha256]). */
    public val tls: Boolean = false,
) : AutoCloseable {
    private val handle = Guarded(TestkitNative.start(tls), TestkitNative::free)
    private val handedOut = mutableListOf<ServerConnection>()

    /** The server's port on 127.0.0.1. */
    public val port: Int = handle.use { TestkitNative.port(it) }

    /**
     * A TLS server's CA certificate (PEM), for `TetherConfig.tls { extraCaPem = … }`; null
     * without [tls].
     */
    public val caPem: String? = handle.use { TestkitNative.tlsIdentity(it, 1) }

    /** base64(SHA-256(SubjectPublicKeyInfo)) of a TLS server's key, for `tls { pinSha256 += … }`. */
    public val pinSha256: String? = handle.use { TestkitNative.tlsIdentity(it, 2) }

    /** `ws://127.0.0.1:PORT` + [path], or `wss://localhost:PORT` + [path] with [tls]. */
    public fun url(path: String = "/"): String =
        if (tls) "wss://localhost:$port$path" else "ws://127.0.0.1:$port$path"

    /** Whether text and binary messages are echoed back (on by default). */
    public fun setEcho(echo: Boolean): Unit = handle.use { TestkitNative.control(it, TestkitNative.SET_ECHO, echo.toString()) }

    /** Queues the answer to a coming handshake (first queued, first used). */
    public fun enqueue(reply: HandshakeReply): Unit =
        handle.use { TestkitNative.control(it, TestkitNative.PUSH_REPLY, reply.toJson()) }

    /** Replaces the network conditions of every connection, current and new. */
    public fun setNetwork(network: NetworkConditions): Unit =
        handle.use { TestkitNative.control(it, TestkitNative.SET_NETWORK, network.toJson()) }

    /** Lifts every network condition. */
    public fun liftNetwork(): Unit = setNetwork(NetworkConditions())

    /** Like a server restart: kills every connection, then listens again on the same port. */
    public fun restart(): Unit = handle.use { TestkitNative.control(it, TestkitNative.RESTART, null) }

    /** Kills every connection (no Close frame) and keeps listening. */
    public fun killConnections(): Unit = handle.use { TestkitNative.control(it, TestkitNative.KILL_CONNECTIONS, null) }

    /** The next handshake request not taken yet, or null after [timeout]. */
    public fun pollRequest(timeout: Duration = DEFAULT_TIMEOUT): RecordedRequest? = handle.use { raw ->
        TestkitNative.awaitRequest(raw, timeout.inWholeMilliseconds)?.let { f ->
            val headers = (3 until f.size step 2).map { f[it] to f[it + 1] }
            RecordedRequest(f[0].toLong(), f[1], f[2], headers)
        }
    }

    /** The next handshake request not taken yet; fails the test after [timeout]. */
    public fun awaitRequest(timeout: Duration = DEFAULT_TIMEOUT): RecordedRequest =
        pollRequest(timeout) ?: throw AssertionError("no handshake request within $timeout")

    /** The next message a client sent not taken yet, or null after [timeout]. */
    public fun pollMessage(timeout: Duration = DEFAULT_TIMEOUT): RecordedMessage? = handle.use { raw ->
        TestkitNative.awaitMessage(raw, timeout.inWholeMilliseconds)?.let { b ->
            val connection = (1..8).fold(0L) { id, i -> (id shl 8) or (b[i].toLong() and 0xff) }
            RecordedMessage(connection, b[0] == 1.toByte(), b.copyOfRange(9, b.size))
        }
    }

    /** The next message a client sent not taken yet; fails the test after [timeout]. */
    public fun awaitMessage(timeout: Duration = DEFAULT_TIMEOUT): RecordedMessage =
        pollMessage(timeout) ?: throw AssertionError("no message within $timeout")

    /**
     * The next accepted WebSocket connection not taken yet; fails the test after [timeout].
     * The server frees its handle on [close].
     */
    public fun awaitConnection(timeout: Duration = DEFAULT_TIMEOUT): ServerConnection {
        val raw = handle.use { TestkitNative.awaitConnection(it, timeout.inWholeMilliseconds) }
        if (raw == 0L) throw AssertionError("no connection within $timeout")
        val connection = ServerConnection(Guarded(raw, TestkitNative::connectionFree))
        synchronized(handedOut) { handedOut += connection }
        return connection
    }

    /** Stops the server: kills every connection, frees the native server. Idempotent. */
    override fun close() {
        synchronized(handedOut) { handedOut.forEach { it.release() } }
        handle.free()
    }

    public companion object {
        /** How long the awaits wait unless told otherwise. */
        public val DEFAULT_TIMEOUT: Duration = 10.seconds
    }
}

/**
 * The server side of one WebSocket connection. Commands are queued in order and return at
 * once; each returns false when the connection was already gone (nothing was done).
 */
public class ServerConnection internal constructor(private val handle: Guarded) {
    /** The connection's id (from 1, in accept order; [RecordedRequest.connection]). */
    public val id: Long = handle.use { TestkitNative.connectionId(it) }

    private fun command(op: Int, code: Int = 0, text: String? = null, data: ByteArray? = null, n: Long = 0): Boolean =
        handle.use { TestkitNative.command(it, op, code, text, data, n) }

    public fun sendText(text: String): Boolean = command(TestkitNative.TEXT, text = text)
    public fun sendBinary(data: ByteArray): Boolean = command(TestkitNative.BINARY, data = data)
    public fun ping(payload: ByteArray = ByteArray(0)): Boolean = command(TestkitNative.PING, data = payload)

    /** Starts the close handshake with any [code] (even one a server must not send). */
    public fun close(code: Int, reason: String = ""): Boolean = command(TestkitNative.CLOSE, code, reason)

    /** A Close frame, then the server ignores the client and keeps TCP open. */
    public fun closeWithoutTcpClose(code: Int, reason: String = ""): Boolean =
        command(TestkitNative.CLOSE_WITHOUT_TCP_CLOSE, code, reason)

    /** Hangs up without a close handshake (FIN). */
    public fun drop(): Boolean = command(TestkitNative.DROP)

    /** Resets the connection (RST). */
    public fun reset(): Boolean = command(TestkitNative.RESET)

    /** Writes half of a binary frame of [size] bytes, then resets. */
    public fun resetMidFrame(size: Int = 1024): Boolean = command(TestkitNative.RESET_MID_FRAME, n = size.toLong())

    /** Shuts the server's write side (FIN) and keeps reading. */
    public fun halfClose(): Boolean = command(TestkitNative.HALF_CLOSE)

    /** A binary frame announcing [length] bytes (and up to 1 MiB of them). */
    public fun sendOversize(length: Long): Boolean = command(TestkitNative.OVERSIZE, n = length)

    /** [text] as one message of [pieces] frames. */
    public fun sendFragmented(text: String, pieces: Int): Boolean =
        command(TestkitNative.FRAGMENTED, text = text, n = pieces.toLong())

    /** Replaces this connection's faults; `setFaults(ConnectionFaults())` lifts them. */
    public fun setFaults(faults: ConnectionFaults): Boolean = command(TestkitNative.FAULTS, text = faults.toJson())

    internal fun release() = handle.free()

    override fun toString(): String = "ServerConnection($id)"
}
