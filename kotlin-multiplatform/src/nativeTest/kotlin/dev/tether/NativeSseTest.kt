package dev.tether

import dev.tether.testing.ServerProcess
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.serialization.builtins.ListSerializer
import kotlinx.serialization.builtins.serializer
import kotlinx.serialization.json.Json

/** Server-Sent Events on Kotlin/Native, through cinterop, against sse-starlette on 127.0.0.1. */
class NativeSseTest {
    @Test
    fun resumesWithLastEventIdAndDecodesTypedData() = runBlocking {
        val server = ServerProcess.sse()
        if (server == null) {
            println("note: TETHER_SSE_PYTHON is not set (sse-starlette not installed): skipped")
            return@runBlocking
        }
        val client = TetherClient {
            reconnect {
                initialDelay = 100.milliseconds
                maxDelay = 400.milliseconds
            }
            contentConverter = KotlinxWebsocketSerializationConverter(Json)
        }
        try {
            // /ticks sends three events counting on from Last-Event-ID, then ends: the
            // reconnect must resume at 4.
            val ticks = client.sse("${server.url}/ticks") {
                val seen = mutableListOf<ServerSentEvent>()
                withTimeout(30.seconds) {
                    for (event in incoming) {
                        seen += event
                        if (seen.size == 6) break
                    }
                }
                seen
            }
            assertEquals((1..6).map { ServerSentEvent("tick", "$it", "tick $it\nsecond line") }, ticks)

            // Built-in serializers: no compiler plugin is needed on Kotlin/Native.
            val words = ListSerializer(String.serializer())
            val body = Json.encodeToString(words, listOf("héllo", "🌍"))
            val echoed = client.connectSse("${server.url}/echo") { method = "POST"; this.body = body }
            assertEquals(
                Decoded.Value(listOf("héllo", "🌍")),
                withTimeout(30.seconds) { echoed.incoming.deserialized(words).first() },
            )
            echoed.close()
            withTimeout(30.seconds) { echoed.awaitClosed() }
            assertEquals(ConnectionState.Closed, echoed.state.value)
        } finally {
            client.close()
            server.close()
        }
    }
}
