package dev.tether

import dev.tether.internal.JsonWriter
import kotlin.time.Duration

/** Marks the option builders, so that an inner block cannot set an outer option by accident. */
@DslMarker
public annotation class TetherDsl

/**
 * Every option of a Tether client, set with a builder DSL:
 *
 * ```
 * val client = TetherClient {
 *     pingInterval = 15.seconds
 *     headers["Authorization"] = "Bearer $token"
 *     reconnect { initialDelay = 500.milliseconds; maxAttempts = 10 }
 *     queue { maxMessages = 500; flush = QueueFlush.MANUAL }
 *     outbox { path = "$filesDir/tether-outbox.db"; fsync = OutboxFsync.BATCH }
 * }
 * ```
 *
 * An option left `null` keeps the core's default (see the README's options
 * table). Values are checked by the core when a session connects: a bad one
 * fails [TetherClient.connect] with [TetherError.InvalidArgument].
 */
@TetherDsl
public class TetherConfig {
    /** Extra HTTP headers of the upgrade request (Authorization, Cookie, …). Never logged. */
    public val headers: MutableMap<String, String> = linkedMapOf()

    /** Subprotocols offered, in order of preference. */
    public val subprotocols: MutableList<String> = mutableListOf()

    /** Bound on DNS + TCP + TLS + HTTP upgrade of one attempt (default 10 s). */
    public var connectTimeout: Duration? = null

    /** Interval between RFC 6455 Ping frames; [Duration.ZERO] disables the heartbeat (default 30 s). */
    public var pingInterval: Duration? = null

    /** Silence after a Ping after which the link is declared dead (default 10 s). */
    public var pongTimeout: Duration? = null

    /** How long a close handshake may wait for the server's Close frame (default 5 s). */
    public var closeTimeout: Duration? = null

    /** Largest incoming message, after reassembly (default 64 MiB). */
    public var maxMessageBytes: Long? = null

    /** Largest single incoming frame (default 16 MiB). */
    public var maxFrameBytes: Long? = null

    /** Received bytes not yet taken by the app past which the socket is not read (default 16 MiB). */
    public var maxUnpolledBytes: Long? = null

    /**
     * Frames buffered between the native poller and [TetherSession.incoming]. When it is
     * full the poller waits, and the core stops reading the socket past [maxUnpolledBytes]:
     * nothing is dropped. Kotlin-side only.
     */
    public var incomingBuffer: Int = 256

    /**
     * Turns typed values into frames and back for [TetherSession.sendSerialized],
     * [TetherSession.receiveDeserialized] and [IncomingFrames.deserialized], e.g.
     * `KotlinxWebsocketSerializationConverter(Json)` (text frames) or
     * `KotlinxWebsocketSerializationConverter(ProtoBuf)` (binary frames). Kotlin-side only.
     */
    public var contentConverter: WebsocketContentConverter? = null

    internal val reconnect: ReconnectConfig = ReconnectConfig()
    internal val queue: QueueConfig = QueueConfig()
    internal val tls: TlsConfig = TlsConfig()
    internal val outbox: OutboxConfig = OutboxConfig()

    /** Adds a header of the upgrade request. */
    public fun header(name: String, value: String) {
        headers[name] = value
    }

    /** Replaces the offered subprotocols. */
    public fun subprotocols(vararg protocols: String) {
        subprotocols.clear()
        subprotocols.addAll(protocols)
    }

    /** Reconnection and backoff. */
    public fun reconnect(block: ReconnectConfig.() -> Unit) {
        reconnect.block()
    }

    /** The outgoing queue that keeps messages sent while the link is down. */
    public fun queue(block: QueueConfig.() -> Unit) {
        queue.block()
    }

    /** Trust for `wss://`. */
    public fun tls(block: TlsConfig.() -> Unit) {
        tls.block()
    }

    /**
     * The durable outbox: sent messages are kept in a file until the server has provably
     * read them (or, for [TetherSession.sendTracked], until [TetherSession.ack]), so that
     * they survive the app being killed. Setting [OutboxConfig.path] turns it on.
     */
    public fun outbox(block: OutboxConfig.() -> Unit) {
        outbox.block()
    }

    /** A copy, so that a client is not changed by later edits of the builder. */
    internal fun copy(): TetherConfig {
        val c = TetherConfig()
        c.headers.putAll(headers)
        c.subprotocols.addAll(subprotocols)
        c.connectTimeout = connectTimeout
        c.pingInterval = pingInterval
        c.pongTimeout = pongTimeout
        c.closeTimeout = closeTimeout
        c.maxMessageBytes = maxMessageBytes
        c.maxFrameBytes = maxFrameBytes
        c.maxUnpolledBytes = maxUnpolledBytes
        c.incomingBuffer = incomingBuffer
        c.contentConverter = contentConverter
        c.reconnect.copyFrom(reconnect)
        c.queue.copyFrom(queue)
        c.tls.copyFrom(tls)
        c.outbox.copyFrom(outbox)
        return c
    }

    /** The options JSON of the core (`ws_connect`): only the keys that were set. */
    internal fun toJson(): String = JsonWriter().apply {
        obj {
            if (headers.isNotEmpty()) field("headers") { obj { headers.forEach { (k, v) -> field(k, v) } } }
            if (subprotocols.isNotEmpty()) field("subprotocols") { array(subprotocols) }
            connectTimeout?.let { field("connect_timeout_ms", it.inWholeMilliseconds) }
            pingInterval?.let { field("ping_interval_ms", it.inWholeMilliseconds) }
            pongTimeout?.let { field("pong_timeout_ms", it.inWholeMilliseconds) }
            closeTimeout?.let { field("close_timeout_ms", it.inWholeMilliseconds) }
            maxMessageBytes?.let { field("max_message_bytes", it) }
            maxFrameBytes?.let { field("max_frame_bytes", it) }
            maxUnpolledBytes?.let { field("max_unpolled_bytes", it) }
            if (!reconnect.isDefault()) field("reconnect") { reconnect.write(this) }
            if (!queue.isDefault()) field("queue") { queue.write(this) }
            if (!tls.isDefault()) field("tls") { tls.write(this) }
            if (!outbox.isDefault()) field("outbox") { outbox.write(this) }
        }
    }.toString()
}

/** Reconnection after ends the app did not ask for, with exponential backoff and jitter. */
@TetherDsl
public class ReconnectConfig internal constructor() {
    /** Reconnect at all (default true). */
    public var enabled: Boolean? = null

    /** Delay before the first retry (default 1 s). */
    public var initialDelay: Duration? = null

    /** Upper bound of a delay (default 30 s). */
    public var maxDelay: Duration? = null

    /** Growth of the delay per attempt, ≥ 1 (default 2.0). */
    public var multiplier: Double? = null

    /** Fraction of each delay that is random, 0..1 (default 0.5). */
    public var jitter: Double? = null

    /** Attempts before giving up; `null` retries forever (the default). */
    public var maxAttempts: Int? = null

    /** A connection open this long resets the attempt counter (default 5 s). */
    public var resetAfter: Duration? = null

    /** Seed of the jitter, for deterministic tests; `null` seeds from the clock. */
    public var jitterSeed: Long? = null

    internal fun isDefault(): Boolean = enabled == null && initialDelay == null && maxDelay == null &&
        multiplier == null && jitter == null && maxAttempts == null && resetAfter == null && jitterSeed == null

    internal fun copyFrom(o: ReconnectConfig) {
        enabled = o.enabled; initialDelay = o.initialDelay; maxDelay = o.maxDelay; multiplier = o.multiplier
        jitter = o.jitter; maxAttempts = o.maxAttempts; resetAfter = o.resetAfter; jitterSeed = o.jitterSeed
    }

    internal fun write(w: JsonWriter) = w.obj {
        enabled?.let { field("enabled", it) }
        initialDelay?.let { field("initial_delay_ms", it.inWholeMilliseconds) }
        maxDelay?.let { field("max_delay_ms", it.inWholeMilliseconds) }
        multiplier?.let { field("multiplier", it) }
        jitter?.let { field("jitter", it) }
        maxAttempts?.let { field("max_attempts", it.toLong()) }
        resetAfter?.let { field("reset_after_ms", it.inWholeMilliseconds) }
        jitterSeed?.let { field("jitter_seed", it) }
    }
}

/** What a full outgoing queue does with one more message. */
public enum class QueueOverflow(internal val json: String) {
    /** `send` waits (`trySend` returns false); nothing is taken. The default. */
    REJECT("reject"),

    /** The oldest queued message is dropped to make room, reported as [TetherError.MessageDropped]. */
    DROP_OLDEST("drop_oldest"),
}

/** When the backlog queued while offline goes out after an open. */
public enum class QueueFlush(internal val json: String) {
    /** At once (the default). */
    ON_OPEN("on_open"),

    /** After [TetherSession.flush]: what the app sends in between (auth, resubscribe) goes first. */
    MANUAL("manual"),
}

/** The outgoing queue: messages sent while the link is down wait here, in order. */
@TetherDsl
public class QueueConfig internal constructor() {
    /** At most this many queued messages (default 1000). */
    public var maxMessages: Int? = null

    /** At most this many queued payload bytes (default 16 MiB). */
    public var maxBytes: Long? = null

    /** What a full queue does (default [QueueOverflow.REJECT]). */
    public var overflow: QueueOverflow? = null

    /** When the backlog goes out after an open (default [QueueFlush.ON_OPEN]). */
    public var flush: QueueFlush? = null

    internal fun isDefault(): Boolean = maxMessages == null && maxBytes == null && overflow == null && flush == null

    internal fun copyFrom(o: QueueConfig) {
        maxMessages = o.maxMessages; maxBytes = o.maxBytes; overflow = o.overflow; flush = o.flush
    }

    internal fun write(w: JsonWriter) = w.obj {
        maxMessages?.let { field("max_messages", it.toLong()) }
        maxBytes?.let { field("max_bytes", it) }
        overflow?.let { field("overflow", it.json) }
        flush?.let { field("flush", it.json) }
    }
}

/** Where trusted roots come from. */
public enum class TlsRoots(internal val json: String) {
    /** Mozilla's roots, bundled (the default). */
    WEBPKI("webpki"),

    /**
     * The operating system's trust store (rustls-platform-verifier), user-installed
     * enterprise CAs included, with [TlsConfig.extraCaPem] as a fallback. A pin on a root then
     * needs the server to send that root. Not on Android yet: there it needs a one-time JNI
     * initialisation that this binding does not do; use [WEBPKI] plus
     * [TlsConfig.extraCaPem] there for now.
     */
    PLATFORM("platform"),
}

/** Trust settings of `wss://` connections. */
@TetherDsl
public class TlsConfig internal constructor() {
    /** Root certificates (default [TlsRoots.WEBPKI]). */
    public var roots: TlsRoots? = null

    /** PEM text of extra trusted CA certificates (a private CA, a test server). */
    public var extraCaPem: String? = null

    /**
     * Public-key pins, like OkHttp's CertificatePinner: base64 SHA-256 hashes of a
     * SubjectPublicKeyInfo, with or without the `sha256/` prefix. Checked after the chain
     * verified, against the verified path only: one of these keys must be the leaf's, or
     * belong to a certificate the leaf chains up to, or to a configured root the chain
     * reaches (a pinned certificate the server merely appends does not count). Otherwise the
     * connection fails with [TetherError.TlsPin] and is not retried. A malformed pin fails
     * [TetherClient.connect] with [TetherError.InvalidArgument].
     */
    public val pinSha256: MutableList<String> = mutableListOf()

    internal fun isDefault(): Boolean = roots == null && extraCaPem == null && pinSha256.isEmpty()

    internal fun copyFrom(o: TlsConfig) {
        roots = o.roots; extraCaPem = o.extraCaPem; pinSha256.clear(); pinSha256.addAll(o.pinSha256)
    }

    internal fun write(w: JsonWriter) = w.obj {
        roots?.let { field("roots", it.json) }
        extraCaPem?.let { field("extra_ca_pem", it) }
        if (pinSha256.isNotEmpty()) field("pin_sha256") { array(pinSha256) }
    }
}

/** When an outbox write reaches stable storage. */
public enum class OutboxFsync(internal val json: String) {
    /** Before a send returns: the message survives a power loss (the default). Slowest. */
    ALWAYS("always"),

    /**
     * Synced at least every 100 ms, and concurrent senders share syncs: a message survives
     * the app being killed at once, a power loss up to the last sync.
     */
    BATCH("batch"),
}

/**
 * The durable outbox (SQLite, in WAL mode). With it, [TetherSession.send] returns only once
 * the message is stored, and a session opened on a file that still holds messages (after a
 * kill, or a close while offline) sends them first, in order. Untracked messages leave the
 * file once the server has provably read them; tracked ones ([TetherSession.sendTracked])
 * once acked ([TetherSession.ack]), and are sent again after every reconnect until then.
 * One session at a time may hold a file: a second one fails to connect.
 */
@TetherDsl
public class OutboxConfig internal constructor() {
    /** The outbox's SQLite file, created if missing (e.g. under the app's files directory). Required. */
    public var path: String? = null

    /** When writes reach stable storage (default [OutboxFsync.ALWAYS]). */
    public var fsync: OutboxFsync? = null

    /** At most this many stored messages (default 10000); a send past it waits (it is full). */
    public var maxMessages: Int? = null

    /** At most this many stored payload bytes (default 64 MiB). */
    public var maxBytes: Long? = null

    internal fun isDefault(): Boolean = path == null && fsync == null && maxMessages == null && maxBytes == null

    internal fun copyFrom(o: OutboxConfig) {
        path = o.path; fsync = o.fsync; maxMessages = o.maxMessages; maxBytes = o.maxBytes
    }

    internal fun write(w: JsonWriter) = w.obj {
        path?.let { field("path", it) }
        fsync?.let { field("fsync", it.json) }
        maxMessages?.let { field("max_messages", it.toLong()) }
        maxBytes?.let { field("max_bytes", it) }
    }
}
