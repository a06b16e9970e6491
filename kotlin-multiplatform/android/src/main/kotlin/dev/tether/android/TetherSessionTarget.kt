package dev.tether.android

import android.content.Context
import dev.tether.TetherError
import dev.tether.TetherSession
import java.util.concurrent.Executor
import kotlin.time.Duration

/** This session as a [LifecycleTarget]: calls after the session has ended do nothing. */
public fun TetherSession.asLifecycleTarget(): LifecycleTarget = TetherSessionTarget(this)

/**
 * Binds this session to the app's lifecycle and default network ([TetherLifecycle.bind]).
 * Close the binding with the session (e.g. in `ViewModel.onCleared`): it holds the session.
 */
@JvmOverloads
public fun TetherSession.bindLifecycle(
    context: Context,
    policy: BackgroundPolicy = BackgroundPolicy.PauseInBackground,
    debounce: Duration = TetherLifecycle.DEFAULT_DEBOUNCE,
    callbackExecutor: Executor? = null,
): TetherLifecycle = TetherLifecycle.bind(context, asLifecycleTarget(), policy, debounce, callbackExecutor)

private class TetherSessionTarget(private val session: TetherSession) : LifecycleTarget {
    override fun pause() = unlessEnded { session.pause() }

    override fun resume() = unlessEnded { session.resume() }

    override fun networkChanged(available: Boolean) = unlessEnded { session.networkChanged(available) }

    override fun toString(): String = "LifecycleTarget($session)"

    private inline fun unlessEnded(call: () -> Unit) {
        try {
            call()
        } catch (e: TetherError.Closed) {
            // The session ended (closed, or a final error) before the binding: nothing to drive.
        }
    }
}
