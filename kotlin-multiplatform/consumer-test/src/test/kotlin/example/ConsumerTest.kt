package example

import dev.tether.Frame
import dev.tether.TetherClient
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Test

class ConsumerTest {
    @Test
    fun `the installed jar connects with no flags`() = runBlocking<Unit> {
        assertNull(System.getProperty("tether.library"), "this test must run without -Dtether.library")
        val url = System.getenv("TETHER_ECHO_URL") ?: error("TETHER_ECHO_URL is not set")
        val client = TetherClient()
        val session = client.webSocketSession(url, timeout = 20.seconds)
        session.send("hello from a fresh project")
        val echo = withTimeout(20.seconds) { session.incoming.first() }
        assertEquals(Frame.Text("hello from a fresh project"), echo)
        session.close()
        session.awaitClosed()
        client.close()
    }
}
