package dev.tether.readme

import dev.tether.TetherClient
import kotlin.time.Duration.Companion.seconds

/** Follows an event stream for its first [count] events; if it drops, it resumes after the last one. */
suspend fun followFeed(url: String, count: Int): List<String> {
    val client = TetherClient { reconnect { maxDelay = 10.seconds } }
    val seen = mutableListOf<String>()
    client.sse(url, configure = { readTimeout = 30.seconds }) {
        for (event in incoming) {
            seen += "${event.type} #${event.id}: ${event.data}"
            if (seen.size == count) break
        }
    }
    client.close()
    return seen
}
