package dev.tether.android

import android.app.Application
import android.content.Context
import android.net.ConnectivityManager
import android.os.Handler
import android.os.Looper
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executor
import java.util.concurrent.Executors
import java.util.concurrent.RejectedExecutionException
import java.util.concurrent.atomic.AtomicBoolean
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds

/**
 * Binds a [LifecycleTarget] (a [dev.tether.TetherSession], see [bindLifecycle]) to the app:
 * - app foreground/background, from the started activities of the whole process with a
 *   [debounce] before "background" (so a rotation is not one), turned into
 *   [LifecycleTarget.pause]/[LifecycleTarget.resume] as [backgroundPolicy] says;
 * - the default network, validated and not blocked, turned into
 *   [LifecycleTarget.networkChanged] (needs the ACCESS_NETWORK_STATE permission).
 *
 * The framework's callbacks arrive on the main thread and only update counters there; the
 * target is called on another executor, so a slow target never blocks the main looper.
 * No activity is kept: callbacks are registered on the [Application]. Android 8.0 (API 26)
 * or later.
 *
 * Thread-safe: [backgroundPolicy] may be set and [close] called from any thread. Bind once,
 * early (Application.onCreate sees every activity start); until an activity has started,
 * the target is left as it is.
 */
public class TetherLifecycle private constructor(
    private val application: Application,
    private val connectivity: ConnectivityManager?,
    private val target: LifecycleTarget,
    policy: BackgroundPolicy,
    debounce: Duration,
    private val executor: Executor,
    private val ownedExecutor: ExecutorService?,
) : AutoCloseable {
    private val closed = AtomicBoolean(false)
    private val main = Handler(Looper.getMainLooper())

    // Confined to the main thread, as are the trackers' own fields.
    private var appliedPolicy: BackgroundPolicy = policy
    private var inBackground = false
    private var paused = false
    private val pauseAfterGrace = Runnable { pauseIfBackground() }

    private val foreground = ForegroundTracker(
        main,
        debounce.inWholeMilliseconds,
        object : ForegroundTracker.Listener {
            override fun onForeground() = enterForeground()
            override fun onBackground() = enterBackground()
        },
    )
    private val network = DefaultNetworkTracker { available ->
        if (!closed.get()) deliver { networkChanged(available) }
    }

    @Volatile
    private var requestedPolicy: BackgroundPolicy = policy

    /**
     * What to do in the background; may change at any time from any thread, e.g. to
     * [BackgroundPolicy.KeepAlive] while a foreground service runs (which resumes a paused
     * target) and back (which pauses it after the grace period if the app is still away).
     */
    public var backgroundPolicy: BackgroundPolicy
        get() = requestedPolicy
        set(value) {
            requestedPolicy = value
            onMain { applyPolicy(value) }
        }

    private fun start() {
        application.registerActivityLifecycleCallbacks(foreground)
        if (connectivity != null) {
            connectivity.registerDefaultNetworkCallback(network, main)
            // The system says nothing at all when there is no default network.
            val noNetwork = connectivity.activeNetwork == null
            if (noNetwork) onMain { if (!closed.get()) network.noDefaultNetwork() }
        }
    }

    /**
     * Unbinds: unregisters both callbacks and drops calls not delivered yet (a call already
     * running finishes). Leaves the target as it is: a paused session stays paused. Calling
     * it again does nothing.
     */
    override fun close() {
        if (!closed.compareAndSet(false, true)) return
        application.unregisterActivityLifecycleCallbacks(foreground)
        try {
            connectivity?.unregisterNetworkCallback(network)
        } catch (e: IllegalArgumentException) {
            // Never registered: bind failed on the permission.
        }
        // Timers are the main thread's: removing them is thread-safe.
        foreground.cancel()
        main.removeCallbacks(pauseAfterGrace)
        ownedExecutor?.shutdown()
    }

    override fun toString(): String = "TetherLifecycle($target, $requestedPolicy${if (closed.get()) ", closed" else ""})"

    private fun enterForeground() {
        if (closed.get()) return
        inBackground = false
        main.removeCallbacks(pauseAfterGrace)
        resumeIfPaused()
    }

    private fun enterBackground() {
        if (closed.get()) return
        inBackground = true
        applyPolicy(appliedPolicy)
    }

    private fun applyPolicy(policy: BackgroundPolicy) {
        if (closed.get()) return
        appliedPolicy = policy
        main.removeCallbacks(pauseAfterGrace)
        when (policy) {
            BackgroundPolicy.KeepAlive -> resumeIfPaused()
            is BackgroundPolicy.PauseAfter -> when {
                !inBackground || paused -> {}
                policy.grace == Duration.ZERO -> pauseIfBackground()
                else -> main.postDelayed(pauseAfterGrace, policy.grace.inWholeMilliseconds)
            }
        }
    }

    private fun pauseIfBackground() {
        if (closed.get() || !inBackground || paused) return
        paused = true
        deliver { pause() }
    }

    private fun resumeIfPaused() {
        if (!paused) return
        paused = false
        deliver { resume() }
    }

    private fun deliver(call: LifecycleTarget.() -> Unit) {
        try {
            executor.execute {
                if (!closed.get()) target.call()
            }
        } catch (e: RejectedExecutionException) {
            // Closed meanwhile: the owned executor is shut down.
        }
    }

    private inline fun onMain(crossinline block: () -> Unit) {
        if (Looper.myLooper() == main.looper) block() else main.post { block() }
    }

    public companion object {
        /** How long no activity may be started before the app counts as in the background (ProcessLifecycleOwner's). */
        public val DEFAULT_DEBOUNCE: Duration = 700.milliseconds

        /**
         * Starts following the app's lifecycle and default network for [target] (from any
         * thread; [context] may be an activity: only its application is kept). The calls go
         * to [callbackExecutor], or when null to a thread the binding owns until [close].
         * Throws SecurityException without the ACCESS_NETWORK_STATE permission.
         */
        @JvmStatic
        @JvmOverloads
        public fun bind(
            context: Context,
            target: LifecycleTarget,
            policy: BackgroundPolicy = BackgroundPolicy.PauseInBackground,
            debounce: Duration = DEFAULT_DEBOUNCE,
            callbackExecutor: Executor? = null,
        ): TetherLifecycle {
            require(!debounce.isNegative() && debounce.isFinite()) { "debounce must be finite and not negative: $debounce" }
            val application = context.applicationContext as Application
            val connectivity = application.getSystemService(ConnectivityManager::class.java)
            val owned = if (callbackExecutor == null) {
                Executors.newSingleThreadExecutor { task -> Thread(task, "tether-lifecycle").apply { isDaemon = true } }
            } else {
                null
            }
            val binding = TetherLifecycle(
                application, connectivity, target, policy, debounce, callbackExecutor ?: owned!!, owned,
            )
            try {
                binding.start()
            } catch (e: Throwable) {
                binding.close()
                throw e
            }
            return binding
        }
    }
}
