package dev.tether.internal

import dev.tether.ConnectionState
import dev.tether.Frame
import dev.tether.TetherClient
import dev.tether.testing.EchoServer
import dev.tether.testing.await
import java.nio.ByteBuffer
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.locks.LockSupport
import kotlin.concurrent.thread
import kotlinx.coroutines.flow.collect
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.condition.EnabledIfSystemProperty

/**
 * Measures how events cross JNI and how pollers are threaded. Not a timed test: runs only
 * with -Dtether.bench=true (scripts/bench-kotlin.sh would pass it), prints a table.
 *
 *   mvn -f kotlin-multiplatform/pom.xml test -Dtest=CrossingBenchmark -Dtether.bench=true
 */
@EnabledIfSystemProperty(named = "tether.bench", matches = "true")
@Timeout(600)
class CrossingBenchmark {
    private val server = EchoServer.start()

    @AfterEach
    fun stop() = server.kill()

    private fun open(): Long {
        NativeLibrary.check()
        val h = NativeBridge.connect(server.url, """{"ping_interval_ms":0}""")
        val buf = EventDecoder.allocate(4096)
        // Wait for OPEN (bounded).
        repeat(1000) {
            val n = NativeBridge.pollBatch(h, 100, buf)
            var at = 0
            while (at < n) {
                if (buf.get(at).toInt() == Codes.WS_EVENT_OPEN) return h
                at += EventDecoder.HEADER + buf.getInt(at + 16)
            }
        }
        error("no open")
    }

    private fun shut(h: Long) {
        NativeBridge.close(h, 1000, null)
        val buf = EventDecoder.allocate(64 * 1024)
        var done = false
        var guard = 0
        while (!done && guard++ < 100_000) {
            val n = try { NativeBridge.pollBatch(h, 1000, buf) } catch (e: NativeException) { break }
            var at = 0
            while (at < n) {
                val k = buf.get(at).toInt() and 0xFF
                if (k == 7) done = true
                if (k and EventDecoder.PENDING != 0) NativeBridge.takePending(h)
                at += EventDecoder.HEADER + if (k and EventDecoder.PENDING != 0) 0 else buf.getInt(at + 16)
            }
        }
        NativeBridge.free(h)
    }

    private fun blast(h: Long, n: Int, size: Int) {
        val cmd = "blast:$n:$size".encodeToByteArray()
        NativeBridge.sendText(h, cmd, 0, cmd.size)
    }

    /** Receives n binary messages with batches into a direct buffer of [capacity] bytes. */
    private fun receiveBatched(h: Long, n: Int, capacity: Int): Long {
        val decoder = EventDecoder()
        var got = 0
        var bytes = 0L
        var guard = 0
        while (got < n && guard++ < 10_000_000) {
            val len = NativeBridge.pollBatch(h, 5000, decoder.buffer)
            decoder.decode(len, { NativeBridge.takePending(h) }) { e ->
                if (e is NativeEvent.Binary) {
                    got++
                    bytes += e.data.size
                }
            }
        }
        check(got == n) { "got $got of $n" }
        return bytes
    }

    /** Receives n binary messages one JNI call (and one byte[]) each. */
    private fun receiveOneByOne(h: Long, n: Int): Long {
        val fields = LongArray(5)
        var got = 0
        var bytes = 0L
        var guard = 0
        while (got < n && guard++ < 10_000_000) {
            val payload = NativeBridge.pollOne(h, 5000, fields)
            if (fields[0] == Codes.WS_EVENT_BINARY.toLong()) {
                got++
                bytes += payload!!.size
            }
        }
        check(got == n) { "got $got of $n" }
        return bytes
    }

    private fun rate(label: String, n: Int, block: () -> Long) {
        // One warm-up round, then three measured; the best is reported.
        block()
        var best = Double.MAX_VALUE
        var bytes = 0L
        repeat(3) {
            val t0 = System.nanoTime()
            bytes = block()
            best = minOf(best, (System.nanoTime() - t0) / 1e9)
        }
        println(String.format("%-44s %10.0f msg/s %9.1f MB/s", label, n / best, bytes / best / 1e6))
    }

    @Test
    fun `crossing - batch into a direct buffer vs one byte array per event`() {
        val h = open()
        for ((n, size) in listOf(200_000 to 64, 50_000 to 1024, 300 to (1 shl 20))) {
            rate("pollBatch  n=$n size=$size", n) { blast(h, n, size); receiveBatched(h, n, 0) }
            rate("pollOne    n=$n size=$size", n) { blast(h, n, size); receiveOneByOne(h, n) }
        }
        shut(h)
        // The whole façade: TetherSession.incoming (poller thread, channel, Frame).
        val client = TetherClient { pingInterval = kotlin.time.Duration.ZERO }
        runBlocking {
            val s = client.connect(server.url)
            s.state.await { it == ConnectionState.Open }
            for ((n, size) in listOf(200_000 to 64, 300 to (1 shl 20))) {
                rate("session.incoming n=$n size=$size", n) {
                    var bytes = 0L
                    runBlocking {
                        s.send("blast:$n:$size")
                        s.incoming.take(n).collect { bytes += (it as Frame.Binary).data.size }
                    }
                    bytes
                }
            }
            s.close()
            s.awaitClosed()
        }
        client.close()
    }

    /** Echo round trips on [sessions] handles, polled by [pollers] (each delivers into queues). */
    private fun roundTrips(sessions: Int, shared: Boolean, rounds: Int, blastN: Int): String {
        val handles = List(sessions) { open() }
        val queues = List(sessions) { LinkedBlockingQueue<ByteArray>() }
        val running = AtomicBoolean(true)
        fun drain(i: Int, decoder: EventDecoder, timeoutMs: Int): Int {
            val n = NativeBridge.pollBatch(handles[i], timeoutMs, decoder.buffer)
            decoder.decode(n, { NativeBridge.takePending(handles[i]) }) { e ->
                if (e is NativeEvent.Binary) queues[i].add(e.data)
            }
            return n
        }
        val threads = if (shared) {
            listOf(thread(name = "shared-poller") {
                val decoder = EventDecoder()
                var idle = 0
                while (running.get()) {
                    var any = 0
                    for (i in handles.indices) any += drain(i, decoder, 0)
                    if (any > 0) idle = 0 else if (++idle > 100) LockSupport.parkNanos(minOf(1_000_000L, 10_000L shl minOf(idle - 100, 7)))
                }
            })
        } else {
            handles.indices.map { i ->
                thread(name = "poller-$i") {
                    val decoder = EventDecoder()
                    // Production polls with a 30 s bound; 1 s keeps the benchmark's shutdown short.
                    while (running.get()) drain(i, decoder, 1000)
                }
            }
        }
        // Idle cost: CPU the pollers burn in one second without traffic.
        val mx = java.lang.management.ManagementFactory.getThreadMXBean()
        val cpu0 = threads.sumOf { mx.getThreadCpuTime(it.id) }
        Thread.sleep(1000)
        val idleCpuMs = (threads.sumOf { mx.getThreadCpuTime(it.id) } - cpu0) / 1e6
        val payload = ByteArray(64)
        // Latency: one message in flight per session, sessions in turn.
        val samples = LongArray(rounds)
        for (r in 0 until rounds) {
            val i = r % sessions
            val t0 = System.nanoTime()
            NativeBridge.sendBinary(handles[i], payload, 0, payload.size)
            checkNotNull(queues[i].poll(5, TimeUnit.SECONDS)) { "no echo" }
            samples[r] = System.nanoTime() - t0
        }
        samples.sort()
        // Throughput: every session receives a blast at once.
        val t0 = System.nanoTime()
        for (h in handles) blast(h, blastN, 64)
        for (q in queues) repeat(blastN) { checkNotNull(q.poll(10, TimeUnit.SECONDS)) }
        val seconds = (System.nanoTime() - t0) / 1e9
        running.set(false)
        threads.forEach { it.join(5000) }
        handles.forEach(::shut)
        return String.format(
            "%-8s sessions=%-3d idle cpu %5.1f ms/s  rtt p50 %6.1f µs  p99 %7.1f µs   blast %9.0f msg/s",
            if (shared) "shared" else "per-sess", sessions, idleCpuMs,
            samples[rounds / 2] / 1e3, samples[rounds * 99 / 100] / 1e3, sessions * blastN / seconds,
        )
    }

    @Test
    fun `pollers - one thread per session vs one shared thread`() {
        for (sessions in listOf(1, 8, 64)) {
            for (shared in listOf(false, true)) {
                roundTrips(sessions, shared, 500, 2_000) // warm-up
                println(roundTrips(sessions, shared, 4_000, 200_000 / sessions))
            }
        }
    }
}
