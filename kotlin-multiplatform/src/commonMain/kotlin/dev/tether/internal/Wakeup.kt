@file:OptIn(ExperimentalAtomicApi::class)

package dev.tether.internal

import kotlin.concurrent.atomics.AtomicReference
import kotlin.concurrent.atomics.ExperimentalAtomicApi
import kotlin.coroutines.Continuation
import kotlin.coroutines.resume
import kotlin.coroutines.resumeWithException
import kotlin.coroutines.suspendCoroutine
import kotlin.time.Duration
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch

/**
 * How a drain coroutine is woken (its session has events; the app made room): [await]
 * suspends until [signal], and a signal given while nobody waits is kept for the next
 * [await], as with a `Channel<Unit>(CONFLATED)`. One waiter at a time.
 *
 * Not a channel: a channel's send that resumes a waiter is one big method shared by every
 * channel of the process, and with the drain resumed in it (drains are unconfined) the JIT
 * compiled the drain's code into it again and again, costing more CPU in the throughput
 * benchmark than the frames themselves. Here the resume is one small call.
 *
 * [await] is not cancellable (a drain is never cancelled: it ends with its session), so a
 * wait costs no cancellation handle on the drain's job; [awaitWithin] bounds a wait.
 */
internal class Wakeup {
    /** [IDLE], [SIGNALLED], a [Closed], or the waiting continuation. */
    private val state = AtomicReference<Any>(IDLE)

    /** Returns at once when a signal is pending; throws the cause once [close]d. */
    suspend fun await() {
        val now = state.load()
        if (now === SIGNALLED && state.compareAndSet(SIGNALLED, IDLE)) return
        if (now is Closed) throw now.cause
        suspendCoroutine { waiter -> park(waiter) }
    }

    /** As [await], returning after [timeout] at the latest (then maybe with a signal left for the next wait). */
    suspend fun awaitWithin(timeout: Duration): Unit = coroutineScope {
        val timer = launch {
            delay(timeout)
            signal()
        }
        try {
            await()
        } finally {
            timer.cancel()
        }
    }

    private fun park(waiter: Continuation<Unit>) {
        while (true) {
            val now = state.load()
            when {
                now === IDLE -> if (state.compareAndSet(IDLE, waiter)) return
                now === SIGNALLED -> if (state.compareAndSet(SIGNALLED, IDLE)) {
                    waiter.resume(Unit)
                    return
                }
                now is Closed -> {
                    waiter.resumeWithException(now.cause)
                    return
                }
                else -> error("a Wakeup has one waiter at a time")
            }
        }
    }

    /** Wakes the waiter, or keeps the signal for the next [await]. */
    fun signal() {
        while (true) {
            val now = state.load()
            when {
                now === SIGNALLED || now is Closed -> return
                now === IDLE -> if (state.compareAndSet(IDLE, SIGNALLED)) return
                else -> if (state.compareAndSet(now, IDLE)) {
                    @Suppress("UNCHECKED_CAST")
                    (now as Continuation<Unit>).resume(Unit)
                    return
                }
            }
        }
    }

    /** Every [await] from now on throws [cause], the one waiting now too. */
    fun close(cause: Throwable) {
        val before = state.exchange(Closed(cause))
        if (before is Continuation<*>) before.resumeWithException(cause)
    }

    private class Closed(val cause: Throwable)

    private companion object {
        val IDLE = Any()
        val SIGNALLED = Any()
    }
}
