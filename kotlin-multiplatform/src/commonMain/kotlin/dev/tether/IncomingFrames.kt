package dev.tether

import dev.tether.internal.SessionCore
import dev.tether.internal.keepAlive
import kotlinx.coroutines.channels.ChannelIterator
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.FlowCollector
import kotlinx.coroutines.flow.emitAll
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.map
import kotlinx.serialization.KSerializer
import kotlinx.serialization.serializer

/**
 * The received frames of a session ([TetherSession.incoming], and `incoming` inside
 * [TetherClient.webSocket]): a [Flow] of [Frame], in order, across reconnections, that
 * completes when the session has ended. Several collectors share the frames (each frame goes
 * to one of them). Not collecting makes the session stop reading the socket once
 * [TetherConfig.incomingBuffer] frames and [TetherConfig.maxUnpolledBytes] are waiting:
 * nothing is dropped.
 *
 * Ktor's channel style works too: `incoming.receive()` and `for (frame in incoming)`.
 */
public class IncomingFrames internal constructor(
    private val owner: Any,
    private val core: SessionCore,
) : Flow<Frame> {
    private val frames: Flow<Frame> = flow {
        try {
            emitAll(core.frames.asFlow())
        } finally {
            keepAlive(owner)
        }
    }

    override suspend fun collect(collector: FlowCollector<Frame>): Unit = frames.collect(collector)

    /** The next frame, as a channel's `receive`; throws [TetherError.Closed] once the session has ended. */
    public suspend fun receive(): Frame {
        // A frame that waits already is taken without a suspending call, whose continuation
        // object (one per frame, with the one of the call it makes) the fast path never needs.
        val frame = core.frames.tryReceive() ?: return receiveWaiting()
        keepAlive(owner)
        return frame
    }

    private suspend fun receiveWaiting(): Frame {
        val frame = core.frames.receiveOrNull(rethrow = false)
        keepAlive(owner)
        return frame ?: throw TetherError.Closed("the session has ended: no more frames")
    }

    /** `for (frame in incoming) { … }` in a coroutine: ends when the session has ended. */
    public operator fun iterator(): ChannelIterator<Frame> = core.frames.iterator()

    /**
     * The frames decoded as [T] with the session's [TetherConfig.contentConverter]: each one
     * a [Decoded.Value], or a [Decoded.Failure] for a frame that did not decode (the flow and
     * the session go on). Throws [TetherError.InvalidArgument] when no converter is set.
     */
    public inline fun <reified T> deserialized(): Flow<Decoded<T>> = deserialized(serializer<T>())

    /** As [deserialized], with an explicit [serializer]. */
    public fun <T> deserialized(serializer: KSerializer<T>): Flow<Decoded<T>> {
        val converter = core.converter()
        return map { frame -> decode(converter, serializer, frame) }
    }

    internal companion object {
        fun <T> decode(converter: WebsocketContentConverter, serializer: KSerializer<T>, frame: Frame): Decoded<T> = try {
            Decoded.Value(converter.deserialize(serializer, frame))
        } catch (e: Exception) {
            Decoded.Failure(
                TetherDeserializeException(frame, "$frame does not decode as ${serializer.descriptor.serialName}: ${e.message}", e),
            )
        }
    }
}
