package dev.tether.android

import android.app.Application
import android.net.ConnectivityManager
import android.net.NetworkCapabilities
import android.os.Looper
import dev.tether.ConnectionState
import dev.tether.Frame
import dev.tether.TetherClient
import dev.tether.TetherSession
import java.time.Duration as JavaDuration
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assume.assumeTrue
import org.junit.Before
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment
import org.robolectric.Shadows.shadowOf
import org.robolectric.shadows.ShadowNetwork
import org.robolectric.shadows.ShadowNetworkCapabilities

/**
 * A real TetherSession (the Rust core through JNI, loaded inside Robolectric's sandbox from
 * the library named by -Dtether.library) against a WebSocket server on 127.0.0.1.
 */
@RunWith(RobolectricTestRunner::class)
class TetherSessionLifecycleTest {
    private val application: Application = RuntimeEnvironment.getApplication()
    private lateinit var server: LoopbackWebSocketServer
    private lateinit var client: TetherClient

    @Before
    fun start() {
        assumeTrue("set -Dtether.library to libtether.so (scripts/test-android.sh does)", !System.getProperty("tether.library").isNullOrEmpty())
        server = LoopbackWebSocketServer()
        client = TetherClient {
            reconnect {
                initialDelay = 50.milliseconds
                maxDelay = 200.milliseconds
                jitter = 0.0
            }
        }
    }

    @After
    fun stop() {
        if (::client.isInitialized) client.close()
        if (::server.isInitialized) server.close()
    }

    private fun TetherSession.awaitState(what: String, predicate: (ConnectionState) -> Boolean): ConnectionState = runBlocking {
        try {
            withTimeout(20.seconds) { state.first(predicate) }
        } catch (e: Exception) {
            throw AssertionError("$what: still ${state.value}", e)
        }
    }

    private fun TetherSession.echo(text: String) = runBlocking {
        send(text)
        assertEquals(Frame.Text(text), withTimeout(20.seconds) { incoming.first() })
    }

    @Test
    fun `background pauses the session, the foreground and a validated network reopen it`() {
        val session = client.connect(server.url)
        session.awaitState("first open") { it == ConnectionState.Open }
        val binding = session.bindLifecycle(application, callbackExecutor = onTheCallingThread)
        try {
            val network = shadowOf(application.getSystemService(ConnectivityManager::class.java)).networkCallbacks.single()
            val activity = Robolectric.buildActivity(TestActivity::class.java).setup()
            activity.pause().stop()
            shadowOf(Looper.getMainLooper()).idleFor(JavaDuration.ofMillis(700))
            assertEquals(
                ConnectionState.Reconnecting(0, Duration.INFINITE),
                session.awaitState("paused") { it is ConnectionState.Reconnecting },
            )
            assertEquals(listOf(1001), server.closeCodes)

            // Back in the foreground on a network not validated yet (the core holds attempts
            // while it is gone: its own LifecycleTest shows that), then validated.
            val wifi = ShadowNetwork.newInstance(100)
            network.onAvailable(wifi)
            network.onCapabilitiesChanged(wifi, ShadowNetworkCapabilities.newInstance())
            activity.restart().resume()

            val validated = ShadowNetworkCapabilities.newInstance()
            shadowOf(validated).addCapability(NetworkCapabilities.NET_CAPABILITY_VALIDATED)
            network.onCapabilitiesChanged(wifi, validated)
            session.awaitState("open again") { it == ConnectionState.Open }
            assertEquals(2, server.handshakes.get())
            session.echo("after the return")
        } finally {
            binding.close()
            session.close()
        }
    }

    @Test
    fun `a session that ended before its binding is left alone`() {
        val session = client.connect(server.url)
        session.awaitState("open") { it == ConnectionState.Open }
        val binding = session.bindLifecycle(application, callbackExecutor = onTheCallingThread)
        try {
            session.close()
            runBlocking { withTimeout(20.seconds) { session.awaitClosed() } }
            val activity = Robolectric.buildActivity(TestActivity::class.java).setup()
            activity.pause().stop()
            // pause() on an ended session throws TetherError.Closed: the adapter swallows it.
            shadowOf(Looper.getMainLooper()).idleFor(JavaDuration.ofMillis(700))
            activity.restart().resume()
            assertEquals(ConnectionState.Closed, session.state.value)
        } finally {
            binding.close()
        }
    }
}
