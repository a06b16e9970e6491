package dev.tether.readme

import dev.tether.TetherClient
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.withTimeout
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.put

/** Joins a Socket.IO server, hears one echo, gets one acknowledgement. */
suspend fun socketIoChat(url: String, token: String): List<String> {
    val client = TetherClient()
    return client.socketIo(url, configure = { auth = buildJsonObject { put("token", token) } }) {
        // Socket.IO drops events nobody listens to: listen first.
        val echo = async(start = CoroutineStart.UNDISPATCHED) { on("echo").first() }
        emit("echo", JsonPrimitive("hello"))
        val ack = emitWithAck("ack-me", JsonPrimitive(42), timeout = 5.seconds)
        listOf(
            withTimeout(5.seconds) { echo.await() }.args[0].jsonPrimitive.content,
            ack.args[0].jsonPrimitive.content,
        )
    }.also { client.close() }
}
