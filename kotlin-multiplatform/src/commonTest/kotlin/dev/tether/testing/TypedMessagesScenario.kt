// Shared by the JVM tests (SharedScenariosTest) and the native tests (NativeSharedScenariosTest).
package dev.tether.testing

import dev.tether.ConnectionState
import dev.tether.Decoded
import dev.tether.Frame
import dev.tether.KotlinxWebsocketSerializationConverter
import dev.tether.TetherClient
import dev.tether.TetherDeserializeException
import dev.tether.TetherError
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.withTimeout
import kotlinx.serialization.builtins.ListSerializer
import kotlinx.serialization.builtins.serializer
import kotlinx.serialization.json.Json

/**
 * JSON messages through the content converter against the echo server at [url] (built-in
 * serializers, so that no compiler plugin is needed on either platform): sent as text
 * frames, received typed; a frame that does not decode is a [TetherDeserializeException] or a
 * [Decoded.Failure], and the session goes on.
 */
suspend fun typedMessagesScenario(url: String) {
    val client = TetherClient {
        pingInterval = 0.seconds
        contentConverter = KotlinxWebsocketSerializationConverter(Json)
    }
    val numbers = ListSerializer(Int.serializer())
    try {
        val session = client.webSocketSession(url)
        session.sendSerialized(numbers, listOf(1, 2, 3))
        check(withTimeout(10.seconds) { session.receiveDeserialized(numbers) } == listOf(1, 2, 3))

        session.send("{not json")
        session.sendSerialized(numbers, listOf(4))
        val error = runCatching { withTimeout(10.seconds) { session.receiveDeserialized(numbers) } }.exceptionOrNull()
        check(error is TetherDeserializeException && error.frame == Frame.Text("{not json")) { "got $error" }
        check(withTimeout(10.seconds) { session.receiveDeserialized(numbers) } == listOf(4))

        session.send(byteArrayOf(9))
        session.sendSerialized(numbers, listOf(5, 6))
        val decoded = withTimeout(10.seconds) { session.incoming.deserialized(numbers).take(2).toList() }
        check(decoded[0] is Decoded.Failure && decoded[1] == Decoded.Value(listOf(5, 6))) { "decoded $decoded" }
        check(session.state.value == ConnectionState.Open) { "state ${session.state.value}" }
        session.close()
        withTimeout(10.seconds) { session.awaitClosed() }
    } finally {
        client.close()
    }
}

/**
 * A server that is down ([downUrl]: nothing listens) fails [dev.tether.TetherSession.awaitOpen]
 * with the connect error instead of leaving the app in Reconnecting forever, and
 * [TetherClient.webSocketSession] closes what did not open; [url] opens.
 */
suspend fun awaitOpenScenario(url: String, downUrl: String) {
    val client = TetherClient {
        pingInterval = 0.seconds
        reconnect { initialDelay = 50.milliseconds }
    }
    try {
        val down = client.connect(downUrl)
        val error = runCatching { down.awaitOpen(20.seconds) }.exceptionOrNull()
        check(error is TetherError.ConnectFailed) { "awaitOpen on a server that is down gave $error" }
        down.close()
        withTimeout(10.seconds) { down.awaitClosed() }
        val refused = runCatching { client.webSocketSession(downUrl, 20.seconds) }.exceptionOrNull()
        check(refused is TetherError.ConnectFailed) { "webSocketSession gave $refused" }

        val up = client.webSocketSession(url)
        check(up.state.value == ConnectionState.Open)
        up.close()
        withTimeout(10.seconds) { up.awaitClosed() }
    } finally {
        client.close()
    }
}
