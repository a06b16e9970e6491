package dev.tether

import dev.tether.internal.NativeLibrary
import java.io.File
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout

/**
 * A library that cannot be loaded is a [TetherError.LibraryUnavailable] naming the platform
 * and what to do, on the first call and on every later one, never an UnsatisfiedLinkError
 * or NoClassDefFoundError. Each case runs [LoadProbe] in a JVM of its own (a JVM loads the
 * library once).
 */
@Timeout(120)
class LibraryLoadingTest {
    private fun probe(library: String): List<String> {
        val java = File(System.getProperty("java.home"), "bin/java").path
        val process = ProcessBuilder(
            java, "-Dtether.library=$library", "-cp", System.getProperty("java.class.path"),
            LoadProbe::class.java.name,
        ).redirectErrorStream(true).start()
        val output = process.inputStream.bufferedReader().readLines()
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the probe did not finish")
        assertEquals(0, process.exitValue(), output.joinToString("\n"))
        return output
    }

    private fun assertUnavailableTwice(output: List<String>, why: String) {
        assertEquals(2, output.count { it.startsWith("call: ") }, output.joinToString("\n"))
        for (line in output.filter { it.startsWith("call: ") }) {
            assertTrue(line.startsWith("call: LibraryUnavailable: "), line)
            assertTrue(NativeLibrary.platform in line, "the platform is named: $line")
            assertTrue(why in line, "says `$why`: $line")
        }
    }

    @Test
    fun `a missing library is a TetherError on every call`() {
        assertUnavailableTwice(probe("/nonexistent/libtether.so"), "cargo build --release --features jni")
    }

    @Test
    fun `a library without the JNI exports is a TetherError on every call`() {
        // Any shared library that is not Tether's stands for one built without `jni`.
        val other = listOf("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib64/libz.so.1")
            .firstOrNull { File(it).exists() } ?: return
        assertUnavailableTwice(probe(other), "without the cargo feature `jni`")
    }

    @Test
    fun `platforms are named as the jar's resource folders`() {
        assertEquals("linux-x86_64", NativeLibrary.platformName("Linux", "amd64"))
        assertEquals("linux-aarch64", NativeLibrary.platformName("Linux", "aarch64"))
        assertEquals("macos-aarch64", NativeLibrary.platformName("Mac OS X", "aarch64"))
        assertEquals("macos-x86_64", NativeLibrary.platformName("Mac OS X", "x86_64"))
        assertEquals("windows-x86_64", NativeLibrary.platformName("Windows 11", "amd64"))
    }

    @Test
    fun `the version the Kotlin code expects is the crate's`() {
        val cargo = File(System.getProperty("user.dir"), "../Cargo.toml").readLines()
        val version = cargo.first { it.startsWith("version = ") }.substringAfter('"').substringBefore('"')
        assertEquals(version, NativeLibrary.VERSION, "NativeLibrary.VERSION and Cargo.toml")
    }
}

/** Connects twice with whatever library the JVM was given, and prints what each call threw. */
object LoadProbe {
    @JvmStatic
    fun main(args: Array<String>) {
        repeat(2) {
            val outcome = try {
                TetherClient().connect("ws://127.0.0.1:9/").close()
                "connected"
            } catch (e: Throwable) {
                "${e::class.simpleName}: ${e.message}"
            }
            println("call: $outcome")
        }
    }
}
