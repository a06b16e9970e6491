// The JVM clients of scripts/bench.sh, one per process (same JDK, same flags), run by
// examples/bench.rs:
//
//   java -cp … dev.tether.bench.MainKt CLIENT URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW
//
// CLIENT is kotlin (Tether's façade), okhttp (OkHttp 5), ktor-cio or ktor-okhttp (the Ktor
// client's WebSockets with that engine). Each speaks the protocol of every benchmark client
// (bench/README.md): each workload once at a tenth of its size (warm-up, the same for every
// client), then measured, each on a connection of its own; one JSON line per result on
// stdout. A wrong or missing echo exits non-zero.
package dev.tether.bench

import dev.tether.ConnectionState
import dev.tether.TetherClient
import io.ktor.client.HttpClient
import io.ktor.client.engine.HttpClientEngineFactory
import io.ktor.client.engine.cio.CIO
import io.ktor.client.engine.cio.CIOEngineConfig
import io.ktor.client.engine.okhttp.OkHttp
import io.ktor.client.engine.okhttp.OkHttpConfig
import io.ktor.client.plugins.websocket.WebSockets
import io.ktor.client.plugins.websocket.webSocket
import io.ktor.websocket.readBytes
import io.ktor.websocket.readText
import java.lang.management.ManagementFactory
import java.util.Properties
import java.util.concurrent.CountDownLatch
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicReference
import kotlin.system.exitProcess
import kotlin.time.Duration
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.sync.Semaphore
import kotlinx.coroutines.withTimeout
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.Response
import okhttp3.WebSocket
import okhttp3.WebSocketListener
import okio.ByteString
import okio.ByteString.Companion.toByteString
import io.ktor.websocket.Frame as KtorFrame

private const val SMALL = 64
private const val LARGE = 1 shl 20
private const val LIMIT_MS = 120_000L
private const val TEXT = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
private val BIG = ByteArray(LARGE) { (it % 251).toByte() }

/** What each JVM client implements: round trips (ns each), and a windowed stream (ns). */
private interface JvmClient {
    fun roundTrips(url: String, n: Int): LongArray
    fun stream(url: String, size: Int, n: Int, window: Int): Long
}

private fun checkText(text: String?) {
    check(text == TEXT) { "echo of the wrong kind or with other bytes" }
}

private fun checkBinary(data: ByteArray?, size: Int) {
    check(data != null && data.size == size && data[0] == BIG[0] && data[size - 1] == BIG[size - 1]) {
        "echo of the wrong kind, length or bytes"
    }
}

// ---- Tether's Kotlin façade

private class TetherKotlin : JvmClient {
    private val client = TetherClient {
        pingInterval = Duration.ZERO
        maxUnpolledBytes = 256L shl 20
        queue {
            maxMessages = 100_000
            maxBytes = 1L shl 30
        }
    }

    override fun roundTrips(url: String, n: Int): LongArray = runBlocking {
        withTimeout(LIMIT_MS) {
            client.webSocket(url) {
                state.first { it == ConnectionState.Open }
                val samples = LongArray(n)
                for (i in 0 until n) {
                    val t0 = System.nanoTime()
                    send(TEXT)
                    val frame = incoming.receive()
                    samples[i] = System.nanoTime() - t0
                    checkText((frame as? dev.tether.Frame.Text)?.text)
                }
                samples
            }
        }
    }

    override fun stream(url: String, size: Int, n: Int, window: Int): Long = runBlocking {
        withTimeout(LIMIT_MS) {
            client.webSocket(url) {
                state.first { it == ConnectionState.Open }
                val room = Semaphore(window)
                val t0 = System.nanoTime()
                val writer = launch {
                    repeat(n) {
                        room.acquire()
                        if (size == SMALL) send(TEXT) else send(BIG)
                    }
                }
                repeat(n) {
                    when (val frame = incoming.receive()) {
                        is dev.tether.Frame.Text -> check(size == SMALL).also { checkText(frame.text) }
                        is dev.tether.Frame.Binary -> checkBinary(frame.data, size)
                    }
                    room.release()
                }
                writer.join()
                System.nanoTime() - t0
            }
        }
    }
}

// ---- OkHttp 5: callbacks on its reader thread, sends from the measuring thread

private class OkHttpBench : JvmClient {
    private val http = OkHttpClient.Builder()
        .writeTimeout(60, TimeUnit.SECONDS)
        .readTimeout(0, TimeUnit.SECONDS)
        .pingInterval(0, TimeUnit.SECONDS)
        .build()

    /** Opens a WebSocket whose messages (String or ByteString) go to [onMessage]. */
    private fun open(url: String, failure: AtomicReference<Throwable?>, onMessage: (Any) -> Unit): WebSocket {
        val opened = CountDownLatch(1)
        val ws = http.newWebSocket(
            Request.Builder().url(url).build(),
            object : WebSocketListener() {
                override fun onOpen(webSocket: WebSocket, response: Response) = opened.countDown()
                override fun onMessage(webSocket: WebSocket, text: String) = onMessage(text)
                override fun onMessage(webSocket: WebSocket, bytes: ByteString) = onMessage(bytes)
                override fun onFailure(webSocket: WebSocket, t: Throwable, response: Response?) {
                    failure.set(t)
                    opened.countDown()
                }
            },
        )
        check(opened.await(LIMIT_MS, TimeUnit.MILLISECONDS)) { "okhttp: no open" }
        failure.get()?.let { throw it }
        return ws
    }

    override fun roundTrips(url: String, n: Int): LongArray {
        val failure = AtomicReference<Throwable?>()
        val echoes = LinkedBlockingQueue<Any>()
        val ws = open(url, failure) { echoes.add(it) }
        val samples = LongArray(n)
        for (i in 0 until n) {
            val t0 = System.nanoTime()
            check(ws.send(TEXT)) { "okhttp: send refused" }
            val echo = echoes.poll(LIMIT_MS, TimeUnit.MILLISECONDS)
            samples[i] = System.nanoTime() - t0
            failure.get()?.let { throw it }
            checkText(echo as? String)
        }
        ws.close(1000, null)
        return samples
    }

    override fun stream(url: String, size: Int, n: Int, window: Int): Long {
        val failure = AtomicReference<Throwable?>()
        val room = java.util.concurrent.Semaphore(window)
        val done = CountDownLatch(1)
        var got = 0 // only OkHttp's reader thread touches it
        val ws = open(url, failure) { message ->
            try {
                if (size == SMALL) checkText(message as? String) else checkBinary((message as? ByteString)?.toByteArray(), size)
            } catch (e: Throwable) {
                failure.set(e)
                done.countDown()
            }
            room.release()
            if (++got == n) done.countDown()
        }
        val big = BIG.toByteString()
        val t0 = System.nanoTime()
        repeat(n) {
            check(room.tryAcquire(LIMIT_MS, TimeUnit.MILLISECONDS)) { "okhttp: stream timed out" }
            check(if (size == SMALL) ws.send(TEXT) else ws.send(big)) { "okhttp: send refused (queue full or closed)" }
        }
        check(done.await(LIMIT_MS, TimeUnit.MILLISECONDS)) { "okhttp: stream timed out" }
        val elapsed = System.nanoTime() - t0
        failure.get()?.let { throw it }
        ws.close(1000, null)
        return elapsed
    }
}

// ---- Ktor client WebSockets (CIO or OkHttp engine)

private class KtorBench<T : io.ktor.client.engine.HttpClientEngineConfig>(
    engine: HttpClientEngineFactory<T>,
    configure: T.() -> Unit,
) : JvmClient {
    private val http = HttpClient(engine) {
        engine(configure)
        install(WebSockets) {
            // maxFrameSize stays at its default (Int.MAX_VALUE): the OkHttp engine refuses to change it.
            channels {
                incoming = unlimited()
                outgoing = unlimited()
            }
        }
    }

    override fun roundTrips(url: String, n: Int): LongArray = runBlocking {
        withTimeout(LIMIT_MS) {
            val samples = LongArray(n)
            http.webSocket(url) {
                for (i in 0 until n) {
                    val t0 = System.nanoTime()
                    send(KtorFrame.Text(TEXT))
                    val frame = incoming.receive()
                    samples[i] = System.nanoTime() - t0
                    checkText((frame as? KtorFrame.Text)?.readText())
                }
            }
            samples
        }
    }

    override fun stream(url: String, size: Int, n: Int, window: Int): Long = runBlocking {
        withTimeout(LIMIT_MS) {
            var elapsed = 0L
            http.webSocket(url) {
                val room = Semaphore(window)
                val t0 = System.nanoTime()
                val writer = launch {
                    repeat(n) {
                        room.acquire()
                        outgoing.send(if (size == SMALL) KtorFrame.Text(TEXT) else KtorFrame.Binary(true, BIG))
                    }
                }
                repeat(n) {
                    when (val frame = incoming.receive()) {
                        is KtorFrame.Text -> check(size == SMALL).also { checkText(frame.readText()) }
                        is KtorFrame.Binary -> checkBinary(frame.readBytes(), size)
                        else -> error("ktor: unexpected frame $frame")
                    }
                    room.release()
                }
                writer.join()
                elapsed = System.nanoTime() - t0
            }
            elapsed
        }
    }
}

// ---- the protocol

private fun emit(json: String) {
    println(json)
    System.out.flush()
}

private fun cpuSecs(): Double =
    (ManagementFactory.getOperatingSystemMXBean() as com.sun.management.OperatingSystemMXBean).processCpuTime / 1e9

private fun jsonString(s: String) = "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""

public fun main(args: Array<String>) {
    if (args.size != 7) {
        System.err.println("usage: MainKt kotlin|okhttp|ktor-cio|ktor-okhttp URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW")
        exitProcess(2)
    }
    val versions = Properties().apply {
        JvmClient::class.java.getResourceAsStream("/bench-versions.properties")!!.use { load(it) }
    }
    val jvm = "${System.getProperty("java.vm.name")} ${System.getProperty("java.runtime.version")}"
    val kotlin = "Kotlin ${KotlinVersion.CURRENT}, kotlinx-coroutines ${versions["coroutines"]}"
    val (client, version) = when (args[0]) {
        "kotlin" -> TetherKotlin() to "tether ${versions["tether"]} (Kotlin façade, JNI; $kotlin; $jvm)"
        "okhttp" -> OkHttpBench() to "OkHttp ${okhttp3.OkHttp.VERSION} ($jvm)"
        "ktor-cio" -> KtorBench<CIOEngineConfig>(CIO) { requestTimeout = 0 } to
            "Ktor ${versions["ktor"]}, CIO engine ($kotlin; $jvm)"
        "ktor-okhttp" -> KtorBench<OkHttpConfig>(OkHttp) {
            config {
                writeTimeout(60, TimeUnit.SECONDS)
                readTimeout(0, TimeUnit.SECONDS)
            }
        } to "Ktor ${versions["ktor"]}, OkHttp engine (OkHttp ${okhttp3.OkHttp.VERSION}; $kotlin; $jvm)"
        else -> error("unknown client ${args[0]}")
    }
    val url = args[1]
    val (rtt, pipe, pipeWindow, large, largeWindow) = args.drop(2).map { it.toInt().also { n -> require(n > 0) } }
    try {
        emit("{\"version\": ${jsonString(version)}}")
        val warm = { n: Int -> maxOf(1, n / 10) }
        client.roundTrips(url, warm(rtt))
        client.stream(url, SMALL, warm(pipe), pipeWindow)
        client.stream(url, LARGE, warm(large), largeWindow)

        val s = client.roundTrips(url, rtt).also { it.sort() }
        emit(
            "{\"workload\": \"rtt\", \"n\": $rtt, \"p50_us\": ${s[rtt / 2] / 1e3}, " +
                "\"p99_us\": ${s[minOf(rtt - 1, rtt * 99 / 100)] / 1e3}}",
        )
        for ((workload, size, n, window) in listOf(
            listOf("pipelined", SMALL, pipe, pipeWindow),
            listOf("large", LARGE, large, largeWindow),
        )) {
            val cpu = cpuSecs()
            val ns = client.stream(url, size as Int, n as Int, window as Int)
            emit("{\"workload\": \"$workload\", \"n\": $n, \"secs\": ${ns / 1e9}, \"cpu_secs\": ${cpuSecs() - cpu}}")
        }
    } catch (e: Throwable) {
        System.err.println("${args[0]}: $e")
        e.printStackTrace()
        exitProcess(1)
    }
    // OkHttp's and Ktor's pools, Tether's poller: no need to wait for them.
    exitProcess(0)
}
