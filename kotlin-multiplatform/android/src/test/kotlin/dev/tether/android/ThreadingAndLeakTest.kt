package dev.tether.android

import android.app.Activity
import android.app.Application
import android.net.ConnectivityManager
import android.os.Looper
import java.lang.reflect.Modifier
import java.time.Duration as JavaDuration
import java.util.IdentityHashMap
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment
import org.robolectric.Shadows.shadowOf
import org.robolectric.shadows.ShadowNetwork

/** The default executor keeps the main looper free; a binding keeps no activity. */
@RunWith(RobolectricTestRunner::class)
class ThreadingAndLeakTest {
    private val application: Application = RuntimeEnvironment.getApplication()
    private val mainLooper = shadowOf(Looper.getMainLooper())

    /** A target whose pause blocks until [release]; counts down [done] after each call. */
    private class SlowTarget(calls: Int) : LifecycleTarget {
        val recorded = RecordingTarget()
        val pausing = CountDownLatch(1)
        val release = CountDownLatch(1)
        val done = CountDownLatch(calls)

        override fun pause() {
            pausing.countDown()
            release.await(30, TimeUnit.SECONDS)
            recorded.pause()
            done.countDown()
        }

        override fun resume() {
            recorded.resume()
            done.countDown()
        }

        override fun networkChanged(available: Boolean) {
            recorded.networkChanged(available)
            done.countDown()
        }
    }

    @Test
    fun `a blocked target does not block the main looper, and calls keep their order`() {
        val target = SlowTarget(calls = 3)
        val binding = TetherLifecycle.bind(application, target)
        try {
            val network = shadowOf(application.getSystemService(ConnectivityManager::class.java)).networkCallbacks.single()
            val activity = Robolectric.buildActivity(TestActivity::class.java).setup()
            activity.pause().stop()
            mainLooper.idleFor(JavaDuration.ofMillis(700))
            assertTrue("pause reached the target", target.pausing.await(30, TimeUnit.SECONDS))

            // The main looper goes on while pause() is stuck: a network loss and a return are handled.
            network.onLost(ShadowNetwork.newInstance(7).also { network.onAvailable(it) })
            activity.restart().resume()
            mainLooper.idle()
            assertEquals(emptyList<String>(), target.recorded.calls)

            target.release.countDown()
            assertTrue("all calls delivered", target.done.await(30, TimeUnit.SECONDS))
            assertEquals(listOf("pause", "network:false", "resume"), target.recorded.calls)
            val threads = target.recorded.threads.toSet()
            assertEquals(1, threads.size)
            assertFalse("called on the main thread", threads.single() == Looper.getMainLooper().thread)
            assertEquals("tether-lifecycle", threads.single().name)
        } finally {
            binding.close()
        }
    }

    @Test
    fun `a binding made from an activity keeps neither it nor any other activity`() {
        val activity = Robolectric.buildActivity(TestActivity::class.java).setup()
        val binding = TetherLifecycle.bind(activity.get(), RecordingTarget(), callbackExecutor = onTheCallingThread)
        try {
            activity.pause().stop()
            Robolectric.buildActivity(OtherActivity::class.java).setup().pause().stop().destroy()
            activity.destroy()
            mainLooper.idleFor(JavaDuration.ofMillis(700))
            val reached = reachableWithinAdapter(binding)
            reached.filterIsInstance<Activity>().firstOrNull()?.let { fail("the binding reaches $it") }
            assertTrue("the binding holds the application", reached.any { it === application })
        } finally {
            binding.close()
        }
    }

    /**
     * Every object reachable from [root] through the fields of the adapter's own classes
     * (lambdas and inner classes included): where a leaked activity would hide.
     */
    private fun reachableWithinAdapter(root: Any): List<Any> {
        val seen = IdentityHashMap<Any, Unit>()
        val pending = ArrayDeque<Any>().apply { add(root) }
        // Bounded: the adapter's own graph is a handful of objects.
        while (pending.isNotEmpty() && seen.size < 10_000) {
            val next = pending.removeFirst()
            if (seen.put(next, Unit) != null) continue
            if (!next.javaClass.name.startsWith("dev.tether.android.")) continue
            var type: Class<*>? = next.javaClass
            while (type != null && type != Any::class.java) {
                for (field in type.declaredFields) {
                    if (Modifier.isStatic(field.modifiers) || field.type.isPrimitive) continue
                    field.isAccessible = true
                    field.get(next)?.let { pending.add(it) }
                }
                type = type.superclass
            }
        }
        return seen.keys.toList()
    }
}
