@file:OptIn(ExperimentalAtomicApi::class)

package dev.tether.internal

import dev.tether.ConnectionState
import dev.tether.NamespaceState
import dev.tether.SocketIoAck
import dev.tether.SocketIoEvent
import dev.tether.TetherError
import dev.tether.TetherEvent
import kotlin.concurrent.Volatile
import kotlin.concurrent.atomics.AtomicReference
import kotlin.concurrent.atomics.ExperimentalAtomicApi
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CompletableJob
import kotlinx.coroutines.Job
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonObject

/**
 * What a Socket.IO client's poller, its app calls and its cleanup share. Like
 * [SessionCore], it never references the public [dev.tether.SocketIo], so a client the app
 * forgot can become unreachable (and be closed) while the poller still serves it.
 */
internal class SocketIoCore(parent: Job?, private val ackTimeout: Duration) : EventSink {
    val job: CompletableJob = Job(parent)
    val state = MutableStateFlow<ConnectionState>(ConnectionState.Connecting)
    val events = Channel<TetherEvent>(EVENT_BUFFER, BufferOverflow.DROP_OLDEST)

    /** Per namespace: its state and its events (created on first use, kept). */
    class Namespace {
        val state = MutableStateFlow<NamespaceState>(NamespaceState.Joining)

        /** Socket.IO's listeners: no collector, no delivery; a slow one holds the core back. */
        val events = MutableSharedFlow<SocketIoEvent>(extraBufferCapacity = EVENT_BUFFER)
    }

    private val namespaces = AtomicReference<Map<String, Namespace>>(emptyMap())

    /** Acks awaited, and answers that came before their waiter registered. */
    private class Acks(
        val waiting: Map<Long, CompletableDeferred<SioNativeEvent.Ack>> = emptyMap(),
        val early: Map<Long, SioNativeEvent.Ack> = emptyMap(),
        val ended: Boolean = false,
    )

    private val acks = AtomicReference(Acks())

    @Volatile
    private var native: GuardedClient? = null

    @Volatile
    private var closed = false

    fun attach(client: GuardedClient) {
        native = client
        job.invokeOnCompletion { cause -> if (cause != null) abandon() }
    }

    val client: GuardedClient
        get() = native ?: throw TetherError.Closed("the Socket.IO client is not connected")

    private fun raw(block: (RawSocketIo) -> Unit) = client.use { block(it as RawSocketIo) }

    fun namespace(name: String): Namespace {
        namespaces.load()[name]?.let { return it }
        val created = Namespace()
        for (attempt in 0 until Int.MAX_VALUE) {
            val current = namespaces.load()
            current[name]?.let { return it }
            if (namespaces.compareAndSet(current, current + (name to created))) return created
        }
        return created
    }

    fun join(name: String, authJson: String?) {
        val ns = namespace(name)
        // Joining before the CONNECT goes out: set after, it could overwrite the server's
        // answer when this thread is descheduled past the round trip (a loaded machine).
        val before = ns.state.value
        ns.state.value = NamespaceState.Joining
        try {
            raw { it.join(name, authJson) }
        } catch (e: Throwable) {
            ns.state.compareAndSet(NamespaceState.Joining, before)
            throw e
        }
    }

    fun leave(name: String) {
        raw { it.leave(name) }
    }

    /** Emits; the ack id when [wantAck] (else 0). Throws [TetherError.QueueFull] when full. */
    fun emit(namespace: String, event: String, args: List<JsonElement>, attachments: List<ByteArray>, wantAck: Boolean): Long {
        var id: Long? = null
        raw { id = it.emit(namespace, event, JsonArray(args).toString(), attachments, wantAck) }
        return id ?: throw TetherError.QueueFull("the outgoing queue is full: the emit was not taken")
    }

    /** Waits for the answer to emit [id]. */
    suspend fun awaitAck(id: Long, timeout: Duration?): SocketIoAck {
        val deferred = CompletableDeferred<SioNativeEvent.Ack>()
        var early: SioNativeEvent.Ack? = null
        for (attempt in 0 until Int.MAX_VALUE) {
            val current = acks.load()
            if (current.ended) throw TetherError.Closed("the Socket.IO client has ended")
            early = current.early[id]
            val next = if (early != null) {
                Acks(current.waiting, current.early - id)
            } else {
                Acks(current.waiting + (id to deferred), current.early)
            }
            if (acks.compareAndSet(current, next)) break
        }
        // The core times acks out itself; this bounds the wait if it never reports.
        val limit = minOf(timeout ?: Duration.INFINITE, ackTimeout + SAFETY)
        val answer = early ?: withTimeoutOrNull(limit) { deferred.await() } ?: run {
            forget(id)
            throw TetherError.AckTimeout("no acknowledgement within $limit")
        }
        return when (answer.error) {
            0 -> SocketIoAck(parseArray(answer.argsJson), answer.attachments)
            Codes.WS_TIMEOUT -> throw TetherError.AckTimeout(
                "no acknowledgement within the ack timeout ($ackTimeout) of the write, or the namespace was left first",
            )
            Codes.WS_ERR_CLOSED -> throw TetherError.Closed("the Socket.IO client ended before the acknowledgement")
            else -> throw TetherError.of(answer.error, "the acknowledgement failed")
        }
    }

    private fun forget(id: Long) {
        for (attempt in 0 until Int.MAX_VALUE) {
            val current = acks.load()
            if (acks.compareAndSet(current, Acks(current.waiting - id, current.early - id, current.ended))) return
        }
    }

    private fun answered(ack: SioNativeEvent.Ack) {
        for (attempt in 0 until Int.MAX_VALUE) {
            val current = acks.load()
            val waiter = current.waiting[ack.ackId]
            val next = if (waiter != null) {
                Acks(current.waiting - ack.ackId, current.early, current.ended)
            } else {
                Acks(current.waiting, current.early + (ack.ackId to ack), current.ended)
            }
            if (acks.compareAndSet(current, next)) {
                waiter?.complete(ack)
                return
            }
        }
    }

    fun close() {
        if (closed) return
        closed = true
        try {
            client.close(NORMAL, "")
        } catch (e: TetherError.Closed) {
            // Ended already.
        }
    }

    /** The app gave the client up: close, stop delivering. */
    private fun abandon() {
        close()
    }

    override suspend fun deliver(event: NativeEvent) {
        val incoming = appEvent(event)
        if (incoming == null) {
            apply(event)
        } else {
            namespace(incoming.namespace).events.emit(incoming)
        }
    }

    /** Delivers without waiting: false, with nothing done, when a listener is behind. */
    override fun tryDeliver(event: NativeEvent): Boolean {
        val incoming = appEvent(event) ?: run {
            apply(event)
            return true
        }
        return namespace(incoming.namespace).events.tryEmit(incoming)
    }

    /** Socket.IO emits are refused when the queue is full: nothing waits for room. */
    override fun roomMade() {}

    /** The app's event for a server event (the only kind that may wait for listeners). */
    private fun appEvent(event: NativeEvent): SocketIoEvent? {
        val sio = (event as? NativeEvent.SocketIo)?.event as? SioNativeEvent.Event ?: return null
        val answer: ((JsonArray, List<ByteArray>) -> Unit)? = if (sio.ackId > 0) {
            { args, attachments ->
                raw { r ->
                    if (!r.ack(sio.namespace, sio.ackId, args.toString(), attachments)) {
                        throw TetherError.QueueFull("the outgoing queue is full: the acknowledgement was not taken")
                    }
                }
            }
        } else {
            null
        }
        return SocketIoEvent(sio.namespace, sio.name, parseArray(sio.argsJson), sio.attachments, answer)
    }

    /** Every event but a server event: none of them waits. */
    private fun apply(event: NativeEvent) {
        when (event) {
            is NativeEvent.State -> state.value = when (event.state) {
                Codes.WS_STATE_OPEN -> ConnectionState.Open
                Codes.WS_STATE_CONNECTING -> ConnectionState.Connecting
                Codes.WS_STATE_RECONNECTING -> ConnectionState.Reconnecting(0, Duration.INFINITE)
                Codes.WS_STATE_CLOSING -> ConnectionState.Closing
                Codes.WS_STATE_CLOSED -> ConnectionState.Closed
                else -> state.value
            }
            is NativeEvent.Reconnecting -> {
                val delay = event.delayMs.milliseconds
                state.value = ConnectionState.Reconnecting(event.attempt, delay)
                events.trySend(TetherEvent.Reconnecting(event.attempt, delay))
            }
            is NativeEvent.Error -> events.trySend(TetherEvent.Failed(TetherError.of(event.code, event.message)))
            is NativeEvent.SocketIo -> onSocketIo(event.event)
            NativeEvent.Terminated -> finish()
            // A Socket.IO client has none of these.
            is NativeEvent.Open, is NativeEvent.Text, is NativeEvent.Binary,
            is NativeEvent.Closed, is NativeEvent.Resent, is NativeEvent.ServerSent -> {}
        }
    }

    private fun onSocketIo(event: SioNativeEvent) {
        val ns = namespace(event.namespace)
        when (event) {
            is SioNativeEvent.Connect -> ns.state.value = NamespaceState.Connected(event.recovered)
            is SioNativeEvent.ConnectError -> ns.state.value = NamespaceState.Refused(parse(event.dataJson))
            is SioNativeEvent.Disconnect -> ns.state.value = NamespaceState.Disconnected(event.reason)
            is SioNativeEvent.Ack -> answered(event)
            // Delivered by [deliver] and [tryDeliver] (they may wait for listeners).
            is SioNativeEvent.Event -> {}
        }
    }

    private fun finish() {
        state.value = ConnectionState.Closed
        val ended = run {
            for (attempt in 0 until Int.MAX_VALUE) {
                val current = acks.load()
                if (acks.compareAndSet(current, Acks(ended = true))) return@run current
            }
            Acks()
        }
        for (waiter in ended.waiting.values) {
            waiter.complete(SioNativeEvent.Ack("/", 0, null, emptyList(), Codes.WS_ERR_CLOSED))
        }
        events.trySend(TetherEvent.Terminated)
        events.close()
    }

    override fun released() {
        job.complete()
    }

    private companion object {
        const val EVENT_BUFFER = 64
        const val NORMAL = 1000
        val SAFETY = 5.seconds

        fun parse(json: String): JsonElement = try {
            Json.parseToJsonElement(json)
        } catch (e: Exception) {
            JsonObject(emptyMap())
        }

        fun parseArray(json: String?): JsonArray = json?.let { parse(it) as? JsonArray } ?: JsonArray(emptyList())
    }
}
