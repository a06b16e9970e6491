@file:OptIn(NativeRuntimeApi::class, ExperimentalForeignApi::class)

package dev.tether

import dev.tether.testing.EchoServerProcess
import dev.tether.testing.await
import dev.tether.testing.eventually
import kotlin.native.runtime.GC
import kotlin.native.runtime.NativeRuntimeApi
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.seconds
import kotlinx.cinterop.ByteVar
import kotlinx.cinterop.ExperimentalForeignApi
import kotlinx.cinterop.allocArray
import kotlinx.cinterop.memScoped
import kotlinx.cinterop.toKString
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import platform.posix.fclose
import platform.posix.fgets
import platform.posix.fopen

/** Native clients and poller threads do not outlive their sessions, even forgotten ones. */
class NativeLifecycleTest {
    private val server = EchoServerProcess.start()
    private val client = TetherClient { pingInterval = 5.seconds }

    @AfterTest
    fun stop() {
        client.close()
        server.close()
    }

    @Test
    fun aForgottenSessionIsClosedAndFreedAfterAGc() = runBlocking {
        val baseline = TetherClient.liveNativeClients()
        openAndForget()
        assertEquals(baseline + 1, TetherClient.liveNativeClients())
        eventually(timeout = 30.seconds, what = "the forgotten session freed") {
            GC.collect()
            TetherClient.liveNativeClients() == baseline
        }
    }

    /** Opens a session, waits for it to open, and drops every reference to it. */
    private suspend fun openAndForget() {
        val session = client.connect(server.url)
        session.state.await { it == ConnectionState.Open }
    }

    @Test
    fun oneThreadServesEverySession() = runBlocking {
        // One session first, so that the coroutine worker threads exist before counting.
        val warmUp = client.connect(server.url).awaitOpen(30.seconds)
        warmUp.close()
        warmUp.awaitClosed()
        val threadsBefore = threadCount() ?: return@runBlocking // not Linux: nothing to read
        val baseline = TetherClient.liveNativeClients()
        val sessions = (0 until 200).map { client.connect(server.url) }
        sessions.forEach { it.awaitOpen(30.seconds) }
        val added = threadCount()!! - threadsBefore
        assertTrue(added <= 3, "200 sessions added $added threads")
        sessions.forEach { it.close() }
        sessions.forEach { it.awaitClosed() }
        eventually(what = "the native clients freed") { TetherClient.liveNativeClients() == baseline }
        delay(100)
    }

    /** Threads of this process (Linux's /proc), or null where there is no /proc. */
    private fun threadCount(): Int? {
        val file = fopen("/proc/self/status", "r") ?: return null
        try {
            memScoped {
                val buffer = allocArray<ByteVar>(256)
                for (n in 0 until 200) {
                    val line = fgets(buffer, 256, file)?.toKString() ?: break
                    if (line.startsWith("Threads:")) return line.removePrefix("Threads:").trim().toInt()
                }
            }
        } finally {
            fclose(file)
        }
        return null
    }
}
