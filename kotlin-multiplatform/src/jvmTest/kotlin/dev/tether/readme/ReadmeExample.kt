// The Kotlin example of the README, compiled as written (ReadmeExampleTest runs it).
package dev.tether.readme

import dev.tether.ConnectionState
import dev.tether.Decoded
import dev.tether.KotlinxWebsocketSerializationConverter
import dev.tether.TetherClient
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.flow.SharingStarted
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.runningFold
import kotlinx.coroutines.flow.stateIn
import kotlinx.coroutines.launch
import kotlinx.serialization.Serializable
import kotlinx.serialization.json.Json

@Serializable
data class ChatMessage(val from: String, val text: String)

sealed interface ChatItem {
    data class Message(val message: ChatMessage) : ChatItem
    data class Unreadable(val reason: String) : ChatItem
}

/** The OkHttp ChatViewModel of the Android guides, on Tether: `scope` is viewModelScope. */
class ChatViewModel(url: String, token: String, private val scope: CoroutineScope) {
    private val client = TetherClient {
        pingInterval = 15.seconds             // RFC 6455 pings; dead link after pongTimeout
        pongTimeout = 5.seconds
        headers["Authorization"] = "Bearer $token"
        reconnect {
            initialDelay = 500.milliseconds   // then ×2 up to maxDelay, with jitter
            maxDelay = 30.seconds
        }
        queue { maxMessages = 500 }           // kept while offline, sent in order after reopen
        contentConverter = KotlinxWebsocketSerializationConverter(Json)
    }

    // Reconnects by itself until the scope ends (onCleared): no manager, no listener.
    private val session = client.connect(url, scope)

    /** Connecting, Open, Reconnecting(attempt, delay), Closing, Closed: bind it to the UI. */
    val connectionState: StateFlow<ConnectionState> = session.state

    /** Every message so far; a frame that does not parse is shown, and the chat goes on. */
    val messages: StateFlow<List<ChatItem>> = session.incoming.deserialized<ChatMessage>()
        .map { decoded ->
            when (decoded) {
                is Decoded.Value -> ChatItem.Message(decoded.value)
                is Decoded.Failure -> ChatItem.Unreadable(decoded.error.message ?: "unreadable")
            }
        }
        .runningFold(emptyList<ChatItem>()) { items, item -> items + item }
        .stateIn(scope, SharingStarted.Eagerly, emptyList())

    /** "Open, or fail": a server that is down throws its TetherError here. */
    suspend fun awaitConnected() {
        session.awaitOpen(10.seconds)
    }

    /** Queued while offline; suspends only while the queue is full. */
    fun send(text: String) {
        scope.launch { session.sendSerialized(ChatMessage("me", text)) }
    }

    // Android: the lifecycle and connectivity adapter calls these.
    fun onForegroundChanged(foreground: Boolean) = if (foreground) session.resume() else session.pause()
    fun onNetworkChanged(available: Boolean) = session.networkChanged(available)
}
