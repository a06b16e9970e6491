package dev.tether.android

/**
 * What [TetherLifecycle] drives: the lifecycle hints of a connection. [dev.tether.TetherSession]
 * has all three ([asLifecycleTarget]); anything else with the same meaning can be bound too.
 *
 * The calls come one at a time, in order, on the executor given to [TetherLifecycle.bind]
 * (by default a thread of the binding's own, never the main thread). [pause] and [resume]
 * alternate, starting with [pause]; [networkChanged] reports changes only.
 */
public interface LifecycleTarget {
    /** The app has been in the background for the policy's grace period: stop connecting. */
    public fun pause()

    /** The app came back to the foreground after a [pause] (or the policy now keeps it alive). */
    public fun resume()

    /** The default network gained ([available] true) or lost a validated, unblocked connection. */
    public fun networkChanged(available: Boolean)
}
