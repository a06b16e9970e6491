package dev.tether.android

import android.app.Application
import android.content.res.Configuration
import android.os.Looper
import org.robolectric.RuntimeEnvironment
import java.time.Duration as JavaDuration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotSame
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf
import org.robolectric.android.controller.ActivityController

/** App foreground/background from real activities, on the paused main looper's clock. */
@RunWith(RobolectricTestRunner::class)
class ForegroundLifecycleTest {
    private val application: Application = RuntimeEnvironment.getApplication()
    private val target = RecordingTarget()
    private val bindings = mutableListOf<TetherLifecycle>()

    @After
    fun unbind() {
        bindings.forEach { it.close() }
    }

    private fun bind(policy: BackgroundPolicy = BackgroundPolicy.PauseInBackground) =
        TetherLifecycle.bind(application, target, policy, callbackExecutor = onTheCallingThread).also { bindings += it }

    private fun idleFor(millis: Long) = shadowOf(Looper.getMainLooper()).idleFor(JavaDuration.ofMillis(millis))

    private fun launch(): ActivityController<TestActivity> = Robolectric.buildActivity(TestActivity::class.java).setup()

    @Test
    fun `the background pauses once the debounce has passed, the foreground resumes`() {
        bind()
        val activity = launch()
        activity.pause().stop()
        idleFor(699)
        assertEquals(emptyList<String>(), target.calls)
        idleFor(1)
        assertEquals(listOf("pause"), target.calls)

        activity.restart().resume()
        assertEquals(listOf("pause", "resume"), target.calls)
        activity.pause().stop()
        idleFor(700)
        assertEquals(listOf("pause", "resume", "pause"), target.calls)
    }

    @Test
    fun `a rotation does not pause`() {
        bind()
        val activity = launch()
        val before = activity.get()
        val landscape = Configuration(application.resources.configuration).apply {
            orientation = Configuration.ORIENTATION_LANDSCAPE
        }
        activity.configurationChange(landscape)
        assertNotSame("the activity was recreated", before, activity.get())
        activity.recreate()
        idleFor(10_000)
        assertEquals(emptyList<String>(), target.calls)

        // The recreated activity is counted: leaving it is a background.
        activity.pause().stop()
        idleFor(700)
        assertEquals(listOf("pause"), target.calls)
    }

    @Test
    fun `a stop and a start within the debounce is no background`() {
        bind()
        val activity = launch()
        activity.pause().stop()
        idleFor(500)
        activity.restart().resume()
        idleFor(10_000)
        assertEquals(emptyList<String>(), target.calls)
    }

    @Test
    fun `a hand-over between two activities is no background`() {
        bind()
        val first = launch()
        first.pause()
        val second = Robolectric.buildActivity(OtherActivity::class.java).setup()
        first.stop()
        idleFor(10_000)
        second.pause().stop().destroy()
        first.restart().resume()
        idleFor(10_000)
        assertEquals(emptyList<String>(), target.calls)
        first.pause().stop()
        idleFor(700)
        assertEquals(listOf("pause"), target.calls)
    }

    @Test
    fun `a grace period delays the pause, and a return within it cancels it`() {
        bind(BackgroundPolicy.PauseAfter(30.seconds))
        val activity = launch()
        activity.pause().stop()
        idleFor(700 + 29_999)
        assertEquals(emptyList<String>(), target.calls)
        activity.restart().resume()
        idleFor(60_000)
        assertEquals(emptyList<String>(), target.calls)

        activity.pause().stop()
        idleFor(700 + 30_000)
        assertEquals(listOf("pause"), target.calls)
    }

    @Test
    fun `keep-alive never pauses, and switching to it resumes a paused target`() {
        val binding = bind()
        val activity = launch()
        activity.pause().stop()
        idleFor(700)
        assertEquals(listOf("pause"), target.calls)

        // A foreground service starts: the connection is wanted in the background.
        binding.backgroundPolicy = BackgroundPolicy.KeepAlive
        assertEquals(listOf("pause", "resume"), target.calls)
        activity.restart().resume().pause().stop()
        idleFor(60_000)
        assertEquals(listOf("pause", "resume"), target.calls)

        // The service ends while the app is still away: pause after the new grace period.
        binding.backgroundPolicy = BackgroundPolicy.PauseAfter(5.seconds)
        idleFor(4_999)
        assertEquals(listOf("pause", "resume"), target.calls)
        idleFor(1)
        assertEquals(listOf("pause", "resume", "pause"), target.calls)
        assertEquals(BackgroundPolicy.PauseAfter(5.seconds), binding.backgroundPolicy)
    }

    @Test
    fun `a policy set from another thread applies on the main looper`() {
        val binding = bind()
        val activity = launch()
        activity.pause().stop()
        idleFor(700)
        val setter = Thread { binding.backgroundPolicy = BackgroundPolicy.KeepAlive }
        setter.start()
        setter.join(10_000)
        assertEquals(listOf("pause"), target.calls)
        idleFor(0)
        assertEquals(listOf("pause", "resume"), target.calls)
    }

    @Test
    fun `no call before any activity started, and a resume only after a pause`() {
        bind()
        idleFor(60_000)
        assertEquals(emptyList<String>(), target.calls)
        launch()
        idleFor(60_000)
        assertEquals(emptyList<String>(), target.calls)
    }

    @Test
    fun `an activity started before the binding stops uncounted`() {
        val early = launch()
        bind()
        early.pause().stop()
        idleFor(10_000)
        assertEquals(emptyList<String>(), target.calls)
        early.restart().resume().pause().stop()
        idleFor(700)
        assertEquals(listOf("pause"), target.calls)
    }

    @Test
    fun `close stops every call, including a pending pause, and twice is fine`() {
        val binding = bind()
        val activity = launch()
        activity.pause().stop()
        idleFor(300)
        binding.close()
        binding.close()
        idleFor(60_000)
        activity.restart().resume().pause().stop()
        idleFor(60_000)
        assertEquals(emptyList<String>(), target.calls)
    }

    @Test
    fun `close from another thread drops a pause that was pending`() {
        val binding = bind()
        val activity = launch()
        activity.pause().stop()
        idleFor(300)
        val closer = Thread { binding.close() }
        closer.start()
        closer.join(10_000)
        idleFor(60_000)
        assertEquals(emptyList<String>(), target.calls)
    }

    @Test
    fun `a negative debounce or grace is refused`() {
        val refused = runCatching { TetherLifecycle.bind(application, target, debounce = (-1).milliseconds) }
        assertEquals(IllegalArgumentException::class.java, refused.exceptionOrNull()?.javaClass)
        val grace = runCatching { BackgroundPolicy.PauseAfter((-1).milliseconds) }
        assertEquals(IllegalArgumentException::class.java, grace.exceptionOrNull()?.javaClass)
    }
}
