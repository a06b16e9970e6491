// Shared by the JVM tests (pom.xml) and the native tests (scripts/test-kotlin-native.sh).
package dev.tether.testing

import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.withTimeout

/** The first value of this flow that matches, within [timeout]. */
suspend fun <T> Flow<T>.await(timeout: Duration = 10.seconds, predicate: (T) -> Boolean): T =
    withTimeout(timeout) { first(predicate) }

/** Polls [condition] every 10 ms until it holds; fails after [timeout]. */
suspend fun eventually(timeout: Duration = 10.seconds, what: String = "condition", condition: () -> Boolean) {
    val start = TimeSource.Monotonic.markNow()
    while (!condition()) {
        check(start.elapsedNow() < timeout) { "$what did not hold within $timeout" }
        delay(10)
    }
}
