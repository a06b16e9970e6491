package dev.tether

import dev.tether.testing.EchoServer
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

@Timeout(30)
class OptionsTest {
    private val server = EchoServer.start()

    @AfterEach
    fun stop() = server.kill()

    @Test
    fun `the DSL writes only the options that were set, with the core's names`() {
        val config = TetherConfig().apply {
            pingInterval = 15.seconds
            connectTimeout = 2.seconds
            maxMessageBytes = 1024
            headers["Authorization"] = "Bearer \"quoted\""
            subprotocols("chat.v2")
            reconnect {
                initialDelay = 500.milliseconds
                multiplier = 1.5
                maxAttempts = 7
                jitterSeed = 42
            }
            queue {
                maxMessages = 10
                overflow = QueueOverflow.DROP_OLDEST
                flush = QueueFlush.MANUAL
            }
            tls { extraCaPem = "line1\nline2" }
        }
        assertEquals(
            """{"headers":{"Authorization":"Bearer \"quoted\""},"subprotocols":["chat.v2"],""" +
                """"connect_timeout_ms":2000,"ping_interval_ms":15000,"max_message_bytes":1024,""" +
                """"reconnect":{"initial_delay_ms":500,"multiplier":1.5,"max_attempts":7,"jitter_seed":42},""" +
                """"queue":{"max_messages":10,"overflow":"drop_oldest","flush":"manual"},""" +
                """"tls":{"extra_ca_pem":"line1\nline2"}}""",
            config.toJson(),
        )
        assertEquals("{}", TetherConfig().toJson())
    }

    private fun rejected(configure: TetherConfig.() -> Unit, url: String = server.url): TetherError.InvalidArgument {
        val before = TetherClient.liveNativeClients()
        val error = assertThrows<TetherError.InvalidArgument> { TetherClient(configure).connect(url) }
        assertEquals(before, TetherClient.liveNativeClients(), "a rejected connect must not leave a native client")
        assertEquals(-2, error.code)
        return error
    }

    @Test
    fun `bad options are rejected with a typed error naming the option`() {
        assertTrue("multiplier" in rejected({ reconnect { multiplier = 0.5 } }).message!!)
        assertTrue("jitter" in rejected({ reconnect { jitter = 2.0 } }).message!!)
        assertTrue("initial_delay_ms" in rejected({ reconnect { initialDelay = 10.seconds; maxDelay = 1.seconds } }).message!!)
        assertTrue("options JSON" in rejected({ pingInterval = (-1).seconds }).message!!)
        assertTrue("max_messages" in rejected({ queue { maxMessages = 0 } }).message!!)
        assertTrue("connect_timeout_ms" in rejected({ connectTimeout = 0.seconds }).message!!)
        assertTrue("multiplier" in rejected({ reconnect { multiplier = Double.NaN } }).message!!)
        assertTrue("max_message_bytes" in rejected({ maxMessageBytes = 3_000_000_000 }).message!!)
        val header = rejected({ headers["Authorization"] = "Bearer sec\nret" }).message!!
        assertTrue("Authorization" in header && "sec" !in header, header)
        assertTrue("Bad Name" in rejected({ headers["Bad Name"] = "x" }).message!!)
        assertTrue("subprotocols" in rejected({ subprotocols("a b") }).message!!)
    }

    @Test
    fun `bad URLs are rejected with a typed error`() {
        rejected({}, url = "http://127.0.0.1/")
        rejected({}, url = "not a url")
        rejected({}, url = "")
    }
}
