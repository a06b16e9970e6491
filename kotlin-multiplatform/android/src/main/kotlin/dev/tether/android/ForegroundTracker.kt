package dev.tether.android

import android.app.Activity
import android.app.Application
import android.os.Bundle
import android.os.Handler

/**
 * Tells app foreground from background by counting started activities, as AndroidX's
 * ProcessLifecycleOwner does: the first start is "foreground"; the last stop is "background"
 * only if no activity starts within [debounceMillis], so that a configuration change (stop,
 * destroy, create, start) or a hand-over between two activities is not one.
 *
 * Confined to [handler]'s thread, where the framework calls activity callbacks (the main
 * thread). Keeps no reference to any activity.
 */
internal class ForegroundTracker(
    private val handler: Handler,
    private val debounceMillis: Long,
    private val listener: Listener,
) : Application.ActivityLifecycleCallbacks {
    internal interface Listener {
        fun onForeground()
        fun onBackground()
    }

    private var startedActivities = 0
    private var inForeground = false
    private val enterBackground = Runnable {
        if (startedActivities == 0 && inForeground) {
            inForeground = false
            listener.onBackground()
        }
    }

    override fun onActivityStarted(activity: Activity) {
        startedActivities++
        handler.removeCallbacks(enterBackground)
        if (!inForeground) {
            inForeground = true
            listener.onForeground()
        }
    }

    override fun onActivityStopped(activity: Activity) {
        // An activity started before the binding was made stops uncounted.
        if (startedActivities == 0) return
        startedActivities--
        if (startedActivities == 0) handler.postDelayed(enterBackground, debounceMillis)
    }

    /** Drops a pending background decision (the binding is closing). */
    fun cancel() {
        handler.removeCallbacks(enterBackground)
    }

    override fun onActivityCreated(activity: Activity, savedInstanceState: Bundle?) {}
    override fun onActivityResumed(activity: Activity) {}
    override fun onActivityPaused(activity: Activity) {}
    override fun onActivitySaveInstanceState(activity: Activity, outState: Bundle) {}
    override fun onActivityDestroyed(activity: Activity) {}
}
