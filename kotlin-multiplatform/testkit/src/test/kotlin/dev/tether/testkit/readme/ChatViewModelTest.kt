// The "Testing your app" example of the README, compiled and run as written.
package dev.tether.testkit.readme

import dev.tether.ConnectionState
import dev.tether.Frame
import dev.tether.TetherClient
import dev.tether.TetherConfig
import dev.tether.testkit.ConnectionFaults
import dev.tether.testkit.TetherTestServer
import dev.tether.testkit.withTestTimers
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharingStarted
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.stateIn
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

// The app's code: a ViewModel-like class over one Tether session.
class ChatViewModel(url: String, config: TetherConfig, private val scope: CoroutineScope) {
    private val session = TetherClient(config).connect(url, scope)
    val online: StateFlow<Boolean> =
        session.state.map { it == ConnectionState.Open }.stateIn(scope, SharingStarted.Eagerly, false)
    val messages = MutableStateFlow<List<String>>(emptyList())

    init {
        scope.launch {
            session.incoming.collect { frame ->
                if (frame is Frame.Text) messages.update { it + frame.text }
            }
        }
    }

    suspend fun send(text: String) = session.send(text)   // queued while offline

    fun close() = session.close()
}

// Its test: the server restarts, then the link turns into a black hole.
class ChatViewModelTest {
    @Test
    fun `the chat survives a server restart and a black hole`() = runBlocking {
        val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
        TetherTestServer().use { server ->
            val chat = ChatViewModel(server.url("/chat"), TetherConfig().withTestTimers(), scope)
            withTimeout(10.seconds) { chat.online.first { it } }
            chat.send("one")
            assertEquals("one", server.awaitMessage().text)
            withTimeout(10.seconds) { chat.messages.first { "one" in it } }   // its echo came back

            server.awaitConnection()           // the connection of "one"
            server.restart()                   // it dies; the port listens again
            val second = server.awaitConnection()   // the app reconnected on its own
            chat.send("two")
            withTimeout(10.seconds) { chat.messages.first { "two" in it } }

            second.setFaults(ConnectionFaults(blackHole = true))   // silent: no FIN, no RST
            server.awaitConnection()           // its heartbeat noticed, and it reconnected
            chat.send("three")
            withTimeout(10.seconds) { chat.messages.first { "three" in it } }
            assertEquals(listOf("one", "two", "three"), chat.messages.value)
            chat.close()
        }
        scope.cancel()
    }
}
