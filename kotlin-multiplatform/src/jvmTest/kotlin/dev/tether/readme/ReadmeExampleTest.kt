package dev.tether.readme

import dev.tether.ConnectionState
import dev.tether.testing.EchoServer
import dev.tether.testing.await
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

@Timeout(30)
class ReadmeExampleTest {
    @Test
    fun `the README's ChatViewModel chats through a local server`() = runBlocking<Unit> {
        val server = EchoServer.start()
        val viewModelScope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
        try {
            val viewModel = ChatViewModel(server.url, "t0ken", viewModelScope)
            viewModel.awaitConnected()
            assertEquals(ConnectionState.Open, viewModel.connectionState.value)
            viewModel.send("hello")
            val items = viewModel.messages.await(10.seconds) { it.isNotEmpty() }
            assertEquals(listOf(ChatItem.Message(ChatMessage("me", "hello"))), items)
            assertEquals("Bearer t0ken", server.handshakes.single()["authorization"])
            viewModel.onForegroundChanged(false)
            viewModel.connectionState.await { it is ConnectionState.Reconnecting }
            viewModel.onForegroundChanged(true)
            viewModel.connectionState.await { it == ConnectionState.Open }
        } finally {
            viewModelScope.cancel() // onCleared(): the session closes and its native client is freed
            server.kill()
        }
    }
}
