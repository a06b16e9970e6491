package dev.tether.testkit

import dev.tether.TetherConfig
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/**
 * Makes every Tether timer short, for tests against [TetherTestServer]: a dead link is found
 * within about 0.4 s (pings every 100 ms, 300 ms without an answer), reconnects start after
 * 10 ms and back off to at most 100 ms without jitter, a silent handshake gives up after 1 s
 * and a close handshake after 0.5 s. A `Retry-After` from the server still wins (that is
 * what it is for: keep it at 1 s in tests). Returns this config, for chaining:
 * `TetherClient(TetherConfig().withTestTimers())`.
 */
public fun TetherConfig.withTestTimers(): TetherConfig = apply {
    connectTimeout = 1.seconds
    pingInterval = 100.milliseconds
    pongTimeout = 300.milliseconds
    closeTimeout = 500.milliseconds
    reconnect {
        initialDelay = 10.milliseconds
        maxDelay = 100.milliseconds
        jitter = 0.0
    }
}
