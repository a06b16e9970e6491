package dev.tether.android

import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.Executor

/** A [LifecycleTarget] that records its calls, in order, and the threads they ran on. */
class RecordingTarget : LifecycleTarget {
    val calls = CopyOnWriteArrayList<String>()
    val threads = CopyOnWriteArrayList<Thread>()

    override fun pause() = record("pause")
    override fun resume() = record("resume")
    override fun networkChanged(available: Boolean) = record("network:$available")

    private fun record(call: String) {
        threads += Thread.currentThread()
        calls += call
    }
}

/** Runs the target's calls where they are made (the main thread), so a test sees them at once. */
val onTheCallingThread = Executor { it.run() }
