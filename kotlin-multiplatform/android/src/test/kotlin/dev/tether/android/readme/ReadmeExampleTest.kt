package dev.tether.android.readme

import android.app.Application
import android.os.Looper
import dev.tether.ConnectionState
import dev.tether.android.LoopbackWebSocketServer
import dev.tether.android.TestActivity
import java.io.File
import java.time.Duration as JavaDuration
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.Assert.assertEquals
import org.junit.Assume.assumeTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment
import org.robolectric.Shadows.shadowOf

/** The README's "Android lifecycle" example is this directory's ChatConnection.kt, and it runs. */
@RunWith(RobolectricTestRunner::class)
class ReadmeExampleTest {
    private val example = File("src/test/kotlin/dev/tether/android/readme/ChatConnection.kt")

    @Test
    fun `the README shows ChatConnection kt as it is compiled here`() {
        val readme = File("../../README.md").readText()
        val section = readme.substringAfter("### Android lifecycle\n", missingDelimiterValue = "")
        val shown = section.substringAfter("```kotlin\n").substringBefore("```")
        val compiled = example.readText().substringAfter("\n\n")
        assertEquals("README.md, ### Android lifecycle", compiled, shown)
    }

    @Test
    fun `the example pauses in the background and keeps alive for a foreground service`() {
        assumeTrue("set -Dtether.library (scripts/test-android.sh does)", !System.getProperty("tether.library").isNullOrEmpty())
        val application: Application = RuntimeEnvironment.getApplication()
        LoopbackWebSocketServer().use { server ->
            ChatConnection(application, server.url).use { chat ->
                chat.awaitState { it == ConnectionState.Open }
                val activity = Robolectric.buildActivity(TestActivity::class.java).setup()
                activity.pause().stop()
                shadowOf(Looper.getMainLooper()).idleFor(JavaDuration.ofMillis(700 + 60_000))
                chat.awaitState { it == ConnectionState.Reconnecting(0, Duration.INFINITE) }

                chat.foregroundServiceRunning(true)
                chat.awaitState { it == ConnectionState.Open }
                assertEquals(2, server.handshakes.get())
            }
        }
    }

    private fun ChatConnection.awaitState(predicate: (ConnectionState) -> Boolean) = runBlocking {
        withTimeout(20.seconds) { session.state.first(predicate) }
    }
}
