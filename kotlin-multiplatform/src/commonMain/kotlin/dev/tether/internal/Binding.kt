package dev.tether.internal

import dev.tether.TetherStats

/**
 * The platform binding of the core: JNI on the JVM and Android (jvmMain), cinterop on
 * iOS and Linux (nativeMain). commonMain sees only these types.
 */
internal interface Binding {
    /**
     * Opens a native client for [url] with the core's [optionsJson] and starts delivering
     * its events to [sink], in order, from a platform thread, until [NativeEvent.Terminated].
     * Throws [dev.tether.TetherError] when the URL or options are bad.
     */
    fun open(url: String, optionsJson: String, sink: EventSink): NativeClient

    /** Native clients alive in the process (created and not yet freed). */
    fun liveClients(): Long

    /** Runs [action] once [owner] becomes unreachable (java.lang.ref.Cleaner on the JVM). */
    fun onUnreachable(owner: Any, action: () -> Unit)
}

/** Receives a client's events, in order, on its poller. */
internal interface EventSink {
    /** May suspend (the poller then waits: backpressure); never throws. */
    suspend fun deliver(event: NativeEvent)

    /**
     * The native client has been freed: after [NativeEvent.Terminated], once no call on it
     * is in flight. What it held (its socket, its outbox file) is released. Called once,
     * from any thread; never throws.
     */
    fun released()
}

/** One native client. Every call throws [dev.tether.TetherError] on failure. */
internal interface NativeClient {
    /** Queues a text message; false when the outgoing queue is full (nothing taken). */
    fun sendText(text: String): Boolean

    /** Queues a binary message; false when the outgoing queue is full (nothing taken). */
    fun sendBinary(data: ByteArray): Boolean

    /** Stores a tracked text message in the outbox; its id, or null when the outbox is full (nothing taken). */
    fun sendTrackedText(text: String): Long?

    /** Stores a tracked binary message in the outbox; its id, or null when the outbox is full (nothing taken). */
    fun sendTrackedBinary(data: ByteArray): Long?

    /** The server confirmed tracked message [id]; an id that is not pending throws InvalidArgument. */
    fun ack(id: Long)

    /** Messages in the outbox: not yet proven read by the server, or tracked and not acked. */
    fun outboxPending(): Long

    fun close(code: Int, reason: String)
    fun pause()
    fun resume()
    fun networkChanged(available: Boolean)
    fun reconnect()
    fun flush()
    fun setHeader(name: String, value: String?)
    fun stats(): TetherStats
}

/** An event of the core, decoded by the binding. */
internal sealed class NativeEvent {
    /** A `ws_state` value ([Codes], `WS_STATE_…`). */
    class State(val state: Int) : NativeEvent()
    class Open(val protocol: String?) : NativeEvent()
    class Text(val text: String) : NativeEvent()
    class Binary(val data: ByteArray) : NativeEvent()
    class Closed(val code: Int, val reason: String) : NativeEvent()
    class Reconnecting(val attempt: Int, val delayMs: Long) : NativeEvent()
    class Error(val code: Int, val message: String) : NativeEvent()

    /** Tracked outbox messages that went out again, oldest first. */
    class Resent(val ids: LongArray) : NativeEvent()
    data object Terminated : NativeEvent()
}

/** The binding of this platform. */
internal expect fun platformBinding(): Binding
