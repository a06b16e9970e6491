package dev.tether.testkit

import dev.tether.testkit.internal.jsonObject
import dev.tether.testkit.internal.jsonString
import kotlin.time.Duration

/**
 * The server's answer to one handshake, queued with [TetherTestServer.enqueue]. Each new
 * connection takes the next one; once none is left, connections are accepted with the first
 * subprotocol the client offers.
 */
public sealed class HandshakeReply {
    internal abstract fun toJson(): String

    /** `101 Switching Protocols`, choosing [subprotocol] (null: none), with extra [headers]. */
    public data class Accept(
        val subprotocol: String? = null,
        val headers: Map<String, String> = emptyMap(),
    ) : HandshakeReply() {
        override fun toJson(): String {
            val protocol = subprotocol?.let { ""","subprotocol":${jsonString(it)}""" } ?: ""
            return """{"accept":{"headers":${jsonObject(headers)}$protocol}}"""
        }
    }

    /** An HTTP answer other than 101, e.g. `Refuse(503, mapOf("Retry-After" to "1"))`. */
    public data class Refuse(
        val status: Int,
        val headers: Map<String, String> = emptyMap(),
        val body: String = "",
    ) : HandshakeReply() {
        override fun toJson(): String =
            """{"refuse":{"status":$status,"headers":${jsonObject(headers)},"body":${jsonString(body)}}}"""
    }

    /** Reads the request, then resets the connection (RST). */
    public data object Reset : HandshakeReply() {
        override fun toJson(): String = "\"reset\""
    }

    /** Reads the request and never answers (the client's connect timeout must act). */
    public data object Silence : HandshakeReply() {
        override fun toJson(): String = "\"silence\""
    }

    /** TLS servers only: the TLS handshake fails (a fatal alert). */
    public data object TlsFailure : HandshakeReply() {
        override fun toJson(): String = "\"tls_failure\""
    }

    /**
     * TLS servers only: a certificate of the same CA with another key (a pin on
     * [TetherTestServer.pinSha256] fails), then an accept.
     */
    public data object OtherKey : HandshakeReply() {
        override fun toJson(): String = "\"other_key\""
    }

    /** A correct 101 written one byte at a time, [gap] apart. */
    public data class SlowHeaders(val gap: Duration) : HandshakeReply() {
        override fun toJson(): String = """{"slow_headers":{"gap_ms":${gap.inWholeMilliseconds}}}"""
    }
}

/**
 * Faults of one open connection ([ServerConnection.setFaults]); lifting them (the default
 * value) lets held bytes flow again, in order.
 */
public data class ConnectionFaults(
    /** Nothing moves either way and nothing closes: only a heartbeat can tell. */
    val blackHole: Boolean = false,
    /** The server stops reading (no echo, no Pong) but still sends what it is told to. */
    val stall: Boolean = false,
    /** Pings are read and not answered. */
    val dropPongs: Boolean = false,
    /** Each frame the server writes goes out this much later. */
    val delay: Duration = Duration.ZERO,
) {
    internal fun toJson(): String =
        """{"black_hole":$blackHole,"stall":$stall,"drop_pongs":$dropPongs,"delay_ms":${delay.inWholeMilliseconds}}"""
}

/** The network between every client and the server ([TetherTestServer.setNetwork]). */
public data class NetworkConditions(
    /** Added to every chunk of bytes, each way. */
    val latency: Duration = Duration.ZERO,
    /** Bytes per second each way, per connection; null: no limit. */
    val bandwidthBytesPerSecond: Long? = null,
    /** Nothing gets through on any connection, current or new; lifting it delivers what was held. */
    val cut: Boolean = false,
) {
    internal fun toJson(): String {
        val bandwidth = bandwidthBytesPerSecond?.let { ""","bandwidth_bytes_per_s":$it""" } ?: ""
        return """{"latency_ms":${latency.inWholeMilliseconds},"cut":$cut$bandwidth}"""
    }
}

/** One handshake request as the client sent it. Header names are lower-case. */
public class RecordedRequest(
    /** The connection it came on (from 1, in accept order; [ServerConnection.id]). */
    public val connection: Long,
    public val method: String,
    /** The request target, e.g. `/chat?room=1`. */
    public val path: String,
    public val headers: List<Pair<String, String>>,
) {
    /** The first value of header [name] (case-insensitive), or null. */
    public fun header(name: String): String? = headers.firstOrNull { it.first.equals(name, ignoreCase = true) }?.second

    override fun toString(): String = "RecordedRequest($method $path, $headers)"
}

/** One whole message a client sent (fragments joined). */
public class RecordedMessage(
    public val connection: Long,
    public val isText: Boolean,
    public val data: ByteArray,
) {
    /** The text of a text message, else null. */
    public val text: String? get() = if (isText) data.decodeToString() else null

    override fun toString(): String = if (isText) "RecordedMessage(text=$text)" else "RecordedMessage(${data.size} bytes)"
}
