package dev.tether.android.readme

import android.app.Application
import dev.tether.TetherClient
import dev.tether.TetherSession
import dev.tether.android.BackgroundPolicy
import dev.tether.android.TetherLifecycle
import dev.tether.android.bindLifecycle
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds

// Made once, in Application.onCreate: ChatConnection(this, "wss://chat.example.com/ws").
class ChatConnection(app: Application, url: String) : AutoCloseable {
    private val client = TetherClient { pingInterval = 15.seconds }
    val session: TetherSession = client.connect(url)

    // Paused a minute after the last activity stops (past a 700 ms debounce, so a
    // rotation is no background), resumed when one starts; the default network's
    // validated connectivity goes to networkChanged.
    private val lifecycle: TetherLifecycle =
        session.bindLifecycle(app, BackgroundPolicy.PauseAfter(1.minutes))

    // While a foreground service runs, the chat stays connected in the background.
    fun foregroundServiceRunning(running: Boolean) {
        lifecycle.backgroundPolicy =
            if (running) BackgroundPolicy.KeepAlive else BackgroundPolicy.PauseAfter(1.minutes)
    }

    override fun close() {
        lifecycle.close()
        session.close()
        client.close()
    }
}
