package dev.tether.readme

import dev.tether.testing.SseStarletteServer
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

@Timeout(30)
class ReadmeSseExampleTest {
    @Test
    fun `the README SSE example resumes across the end of an sse-starlette stream`() = runBlocking<Unit> {
        SseStarletteServer.start().use { server ->
            // /ticks ends after three events; the fourth comes from the resumed stream.
            val expected = (1..4).map { "tick #$it: tick $it\nsecond line" }
            assertEquals(expected, followFeed(server.url("/ticks"), 4))
        }
    }
}
