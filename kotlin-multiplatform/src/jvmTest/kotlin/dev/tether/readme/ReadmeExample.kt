// The Kotlin example of the README, compiled as written (ReadmeExampleTest runs it).
package dev.tether.readme

import dev.tether.Frame
import dev.tether.QueueOverflow
import dev.tether.TetherClient
import dev.tether.TetherEvent
import dev.tether.TetherSession
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.launch

suspend fun chat(url: String, token: String): List<String> {
    val client = TetherClient {
        pingInterval = 15.seconds             // RFC 6455 pings; dead link after pongTimeout
        pongTimeout = 5.seconds
        headers["Authorization"] = "Bearer $token"
        reconnect {
            initialDelay = 500.milliseconds   // then ×2 up to maxDelay, with jitter
            maxDelay = 30.seconds
        }
        queue {
            maxMessages = 500                 // kept while offline, sent in order after reopen
            overflow = QueueOverflow.REJECT
        }
    }
    val received = mutableListOf<String>()
    client.webSocket(url) {
        launch {
            events.collect { event ->
                if (event is TetherEvent.Failed) println("tether: ${event.error}")
            }
        }
        send("hello")                          // queued until the connection is open
        send(byteArrayOf(1, 2, 3))
        incoming.collect { frame ->            // goes on across reconnections
            when (frame) {
                is Frame.Text -> received += frame.text
                is Frame.Binary -> received += "${frame.data.size} bytes"
            }
            if (received.size == 2) close(1000, "done")
        }
    }
    client.close()
    return received
}

// Android: forward lifecycle and connectivity hints.
fun onForegroundChanged(session: TetherSession, foreground: Boolean) {
    if (foreground) session.resume() else session.pause()
}

fun onNetworkChanged(session: TetherSession, available: Boolean) {
    session.networkChanged(available)
}
