package dev.tether

import dev.tether.internal.Codes
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/** The core's codes become typed errors (tests/code_tables.rs checks that every code has one). */
class TetherErrorTest {
    @Test
    fun `certificate and proxy failures have their own types`() {
        val cases = listOf(
            Codes.WS_ERROR_TLS to TetherError.Tls::class,
            Codes.WS_ERROR_TLS_UNTRUSTED to TetherError.TlsUntrusted::class,
            Codes.WS_ERROR_TLS_EXPIRED to TetherError.TlsExpired::class,
            Codes.WS_ERROR_TLS_HOSTNAME to TetherError.TlsHostname::class,
            Codes.WS_ERROR_TLS_PIN to TetherError.TlsPin::class,
            Codes.WS_ERROR_PROXY to TetherError.Proxy::class,
        )
        for ((code, type) in cases) {
            val error = TetherError.of(code, "m")
            assertTrue(type.java.isInstance(error), "$code gave $error")
            assertEquals(code, error.code)
            assertEquals("m", error.message)
        }
    }

    @Test
    fun `statuses, HTTP answers and unknown codes`() {
        assertTrue(TetherError.of(Codes.WS_ERR_NULL_ARGUMENT, "m") is TetherError.InvalidArgument)
        assertTrue(TetherError.of(Codes.WS_ERR_QUEUE_FULL, "m") is TetherError.QueueFull)
        val refused = TetherError.of(401, "m")
        assertTrue(refused is TetherError.HttpStatus && refused.status == 401, "$refused")
        val unknown = TetherError.of(-999, "m")
        assertTrue(unknown is TetherError.Unknown && unknown.code == -999, "$unknown")
    }
}
