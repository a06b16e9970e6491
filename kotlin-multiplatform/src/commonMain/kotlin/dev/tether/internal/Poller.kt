@file:OptIn(ExperimentalAtomicApi::class)

package dev.tether.internal

import dev.tether.TetherError
import kotlin.concurrent.atomics.AtomicBoolean
import kotlin.concurrent.atomics.AtomicLong
import kotlin.concurrent.atomics.AtomicReference
import kotlin.concurrent.atomics.ExperimentalAtomicApi
import kotlin.concurrent.atomics.incrementAndFetch
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.launch

/**
 * The one poller of the process, on both platforms: a single platform thread waits on a
 * poll set (`ws_poll_set_wait`) holding every session's native client, and resumes each
 * ready session's drain coroutine, which runs on that thread. A drain takes the pending
 * events without blocking (`ws_poll_event` with timeout 0, or one JNI batch), delivers them
 * to the session, then rearms the client in the set. When the app does not keep up (its
 * frame buffer is full) the drain suspends: only that session waits, the core stops reading
 * its socket, and the poller thread goes on. The app's take that makes room (half the
 * buffer) hands the drain's wakeup to the poller thread ([signalOnPollerThread]): one
 * wakeup of that thread per refill, where resuming the drain inline on the app's thread
 * (drains are unconfined) put the whole coroutine resume machinery into each method of the
 * app's receive path, which the JIT compiled again for each of them (in the 64 B
 * throughput benchmark, over a quarter of the C2 compiler's time), and ran the refill on
 * the app's thread instead of beside it.
 *
 * So a thousand sessions cost one thread plus coroutines, not a thousand threads. The
 * thread starts with the first session and ends when the last one has terminated.
 */
internal object Poller {
    private class Member(val client: GuardedClient, val sink: EventSink) {
        /** Signalled by the poller thread when the client has events pending. */
        val ready = Wakeup()
    }

    private val binding: Binding get() = platformBinding()
    private val set: RawPollSet by lazy { binding.newPollSet() }
    private val members = AtomicReference<Map<Long, Member>>(emptyMap())
    private val lastToken = AtomicLong(0)
    private val running = AtomicBoolean(false)

    /** Wakeups for the poller thread to signal (see [signalOnPollerThread]), newest first. */
    private class HandedOver(val wakeup: Wakeup, val next: HandedOver?)

    private val handedOver = AtomicReference<HandedOver?>(null)

    private val drains = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    /** Sessions served now (the leak and thread tests look at it). */
    val size: Int get() = members.load().size

    /**
     * Starts serving [client]: its events go to [sink], in order, until TERMINATED; then it
     * leaves the set and its own reference is dropped ([GuardedClient.destroy]).
     */
    fun serve(client: GuardedClient, sink: EventSink) {
        val token = lastToken.incrementAndFetch()
        val member = Member(client, sink)
        update { it + (token to member) }
        try {
            client.use { set.add(it, token) }
        } catch (e: Throwable) {
            update { it - token }
            throw e
        }
        // Unconfined: a drain runs on the thread that resumed it, with no hop through a
        // dispatcher: the poller thread, which found the session ready or was handed the
        // wakeup of the app's take that made room (signalOnPollerThread). A drain that must
        // wait for the app suspends, and so never holds the poller thread.
        drains.launch(Dispatchers.Unconfined) { drain(token, member) }
        startThread()
    }

    private suspend fun drain(token: Long, member: Member) {
        val batch = ArrayList<NativeEvent>(BATCH)
        var terminated = false
        try {
            while (!terminated) {
                member.ready.await()
                terminated = serveTurn(member, batch)
                if (!terminated) member.client.use { set.rearm(it) }
            }
        } catch (e: Throwable) {
            // The core failed (a bug, a dead runtime thread): report it and end the session.
            val error = e as? TetherError ?: TetherError.Internal(e.toString())
            member.sink.deliver(NativeEvent.Error(error.code, error.message ?: "poll failed"))
            member.sink.deliver(NativeEvent.Terminated)
        } finally {
            try {
                member.client.use { set.remove(it) }
            } catch (e: Throwable) {
                // Released already: nothing waits on it.
            }
            update { it - token }
            member.client.destroy()
            // The poller thread may be blocked with nobody left to serve: let it end.
            if (members.load().isEmpty()) set.wake()
        }
    }

    /**
     * One turn of a ready session: a few batches, then it gives way (it is rearmed, and the
     * poller reports it again at once, after the other ready sessions). True once
     * TERMINATED was delivered.
     *
     * The per-event work is in small methods of their own ([deliverReady]), out of the
     * drain's coroutine: the JIT compiles them once, early, where the coroutine's one big
     * method was compiled again and again (each new path through it: a full buffer, an
     * empty batch) at a cost that showed in the throughput benchmark.
     */
    private suspend fun serveTurn(member: Member, batch: ArrayList<NativeEvent>): Boolean {
        for (round in 0 until ROUNDS_PER_TURN) {
            batch.clear()
            member.client.use { it.drain(batch, BATCH) }
            if (batch.isEmpty()) return false
            var at = deliverReady(member.sink, batch, 0)
            while (at < batch.size) {
                // The sink would wait (the app's buffer is full): wait for this event only.
                member.sink.deliver(batch[at])
                at = deliverReady(member.sink, batch, at + 1)
            }
            // The core ends a batch with TERMINATED, and has no event after it.
            if (batch[batch.size - 1] === NativeEvent.Terminated) return true
        }
        return false
    }

    /** Delivers [batch] from [from] on while that needs no waiting; returns where it stopped (its size: all). */
    private fun deliverReady(sink: EventSink, batch: ArrayList<NativeEvent>, from: Int): Int {
        var at = from
        while (at < batch.size && sink.tryDeliver(batch[at])) at++
        return at
    }

    /**
     * Signals [wakeup] on the poller thread (a drain's room: the drain then runs there), or
     * here when no poller thread runs (a session it does not serve, in tests).
     */
    fun signalOnPollerThread(wakeup: Wakeup) {
        if (!running.load()) {
            wakeup.signal()
            return
        }
        while (true) {
            val top = handedOver.load()
            if (handedOver.compareAndSet(top, HandedOver(wakeup, top))) break
        }
        // No system call unless the thread waits in the poll set; a wait it is not in yet
        // returns at once.
        val woken = try {
            set.wake()
            true
        } catch (e: Throwable) {
            false // a broken poll set: signal here, as the app's take did before
        }
        // The thread may have ended since the check: then nobody else signals it.
        if (!woken || !running.load()) signalHandedOver()
    }

    /** Signals what was handed over; false when nothing was. */
    private fun signalHandedOver(): Boolean {
        var next = handedOver.exchange(null) ?: return false
        while (true) {
            next.wakeup.signal()
            next = next.next ?: return true
        }
    }

    /**
     * A send found [client]'s queue full: the poller thread calls its sink's
     * [EventSink.roomMade] once messages have left the queue (or it closed).
     */
    fun watchRoom(client: GuardedClient) {
        client.use { set.watchRoom(it) }
    }

    private fun startThread() {
        if (running.compareAndSet(false, true)) binding.startThread("tether-poller", ::run)
    }

    /** The poller thread: runs while there are sessions to serve. */
    private fun run() {
        val tokens = LongArray(TOKENS)
        var failures = 0
        while (true) {
            val count = try {
                set.wait(binding.idleTimeoutMs, tokens).also { failures = 0 }
            } catch (e: Throwable) {
                if (++failures >= MAX_FAILURES) {
                    failAll(e)
                    running.store(false)
                    signalHandedOver()
                    return
                }
                0
            }
            // A wait that a hand-over's wake ended is not idle.
            if (!signalHandedOver() && count == 0) binding.idle()
            val served = members.load()
            for (i in 0 until count) {
                val token = tokens[i]
                if (token and RawPollSet.ROOM != 0L) {
                    served[token and RawPollSet.ROOM.inv()]?.sink?.roomMade()
                } else {
                    served[token]?.ready?.signal()
                }
            }
            if (members.load().isEmpty()) {
                running.store(false)
                // A hand-over that came after the last check: nobody else signals it.
                signalHandedOver()
                // A session added meanwhile found the thread running: serve it after all,
                // unless it started a new thread.
                if (members.load().isEmpty() || !running.compareAndSet(false, true)) return
            }
        }
    }

    /** The poll set is broken: every session's drain reports [cause] and ends it. */
    private fun failAll(cause: Throwable) {
        for (member in members.load().values) member.ready.close(cause)
    }

    private inline fun update(change: (Map<Long, Member>) -> Map<Long, Member>) {
        // Copy on write: sessions come and go rarely next to the events they carry.
        for (attempt in 0 until Int.MAX_VALUE) {
            val current = members.load()
            if (members.compareAndSet(current, change(current))) return
        }
        error("the session table never settled")
    }

    /** Events taken per drain call. */
    private const val BATCH = 256
    private const val ROUNDS_PER_TURN = 4
    private const val TOKENS = 256
    private const val MAX_FAILURES = 100
}
