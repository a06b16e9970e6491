package dev.tether

import kotlinx.serialization.BinaryFormat
import kotlinx.serialization.KSerializer
import kotlinx.serialization.SerialFormat
import kotlinx.serialization.StringFormat

/**
 * Turns typed values into frames and back, like Ktor's `WebsocketContentConverter`: set one
 * as [TetherConfig.contentConverter] to use [TetherSession.sendSerialized],
 * [TetherSession.receiveDeserialized] and [IncomingFrames.deserialized].
 */
public interface WebsocketContentConverter {
    /** The frame that carries [value]. */
    public fun <T> serialize(serializer: KSerializer<T>, value: T): Frame

    /** The value [frame] carries; throws when it does not hold one (any exception). */
    public fun <T> deserialize(serializer: KSerializer<T>, frame: Frame): T
}

/**
 * A [WebsocketContentConverter] for a kotlinx.serialization [format]: a [StringFormat]
 * (`Json`) sends text frames, a [BinaryFormat] (`ProtoBuf`, `Cbor`) binary frames. A frame
 * of the other kind does not decode.
 *
 * ```
 * val client = TetherClient { contentConverter = KotlinxWebsocketSerializationConverter(Json) }
 * ```
 */
public class KotlinxWebsocketSerializationConverter(private val format: SerialFormat) : WebsocketContentConverter {
    init {
        require(format is StringFormat || format is BinaryFormat) {
            "$format is neither a StringFormat (text frames) nor a BinaryFormat (binary frames)"
        }
    }

    override fun <T> serialize(serializer: KSerializer<T>, value: T): Frame = when (format) {
        is StringFormat -> Frame.Text(format.encodeToString(serializer, value))
        is BinaryFormat -> Frame.Binary(format.encodeToByteArray(serializer, value))
        else -> error("unreachable: checked in init")
    }

    override fun <T> deserialize(serializer: KSerializer<T>, frame: Frame): T = when {
        format is StringFormat && frame is Frame.Text -> format.decodeFromString(serializer, frame.text)
        format is BinaryFormat && frame is Frame.Binary -> format.decodeFromByteArray(serializer, frame.data)
        else -> throw IllegalArgumentException(
            "a ${if (frame is Frame.Text) "text" else "binary"} frame does not hold ${format::class.simpleName} data",
        )
    }
}

/**
 * A received frame that did not decode as the type asked for: [frame] is what came, [cause]
 * why it did not decode. The session goes on; the app logs or skips it, as a ViewModel does
 * with a message it cannot parse.
 */
public class TetherDeserializeException(
    public val frame: Frame,
    message: String,
    cause: Throwable?,
) : Exception(message, cause)

/** One received frame decoded as a [T] ([IncomingFrames.deserialized]): a value, or a frame that did not decode. */
public sealed class Decoded<out T> {
    /** The frame held a [T]. */
    public data class Value<out T>(val value: T) : Decoded<T>()

    /** The frame did not decode: [error] says why and holds the frame. */
    public data class Failure(val error: TetherDeserializeException) : Decoded<Nothing>()
}
