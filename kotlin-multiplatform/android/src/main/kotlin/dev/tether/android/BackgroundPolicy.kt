package dev.tether.android

import kotlin.time.Duration

/** What [TetherLifecycle] does with the connection while the app is in the background. */
public sealed class BackgroundPolicy {
    /**
     * Pause once the app has been in the background for [grace] (counted after the debounce
     * that tells a real background from a configuration change); resume when it returns.
     */
    public data class PauseAfter(val grace: Duration) : BackgroundPolicy() {
        init {
            require(!grace.isNegative() && grace.isFinite()) { "grace must be finite and not negative: $grace" }
        }
    }

    /** Stay connected in the background, e.g. while a foreground service runs. */
    public data object KeepAlive : BackgroundPolicy()

    public companion object {
        /** Pause as soon as the app is in the background. */
        @JvmField
        public val PauseInBackground: BackgroundPolicy = PauseAfter(Duration.ZERO)
    }
}
