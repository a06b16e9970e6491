package dev.tether.internal

import dev.tether.TetherError
import java.io.File
import java.io.InputStream
import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.security.MessageDigest

/**
 * Finds and loads the Rust library once per process, as sqlite-jdbc does:
 *
 * 1. the file named by the system property `tether.library`, when set;
 * 2. else the copy the jar carries for this platform, the resource
 *    `dev/tether/native/<os>-<arch>/<library file>` (e.g. `linux-x86_64/libtether.so`),
 *    extracted to `<java.io.tmpdir or tether.extractDir>/tether-<version>-<content hash>/`:
 *    the name depends on the bytes, and the file is written under a unique name and then
 *    renamed into place, so concurrent JVMs share one copy and never see half of it;
 * 3. else `System.loadLibrary("tether")` (Android's jniLibs, or java.library.path).
 *
 * Then it checks that the library has the JNI exports (cargo feature `jni`) and is of this
 * jar's version. Any failure is remembered: [check] throws it as
 * [TetherError.LibraryUnavailable] on the first call and on every later one.
 */
internal object NativeLibrary {
    /** The version of the Rust crate this jar's Kotlin code was written for (Cargo.toml). */
    const val VERSION = "0.1.0"

    /** `<os>-<arch>` as the jar's resources name it. */
    val platform: String = platformName(System.getProperty("os.name"), System.getProperty("os.arch"))

    /** null once loaded; else why not. */
    private val failure: String? = try {
        load()
    } catch (e: Throwable) {
        "loading it failed: $e"
    }

    /** Throws [TetherError.LibraryUnavailable] when the library could not be loaded. */
    fun check() {
        failure?.let { throw TetherError.LibraryUnavailable("Tether's native library is unavailable on $platform: $it") }
    }

    private fun load(): String? {
        val explicit = System.getProperty("tether.library")
        val extracted = if (explicit.isNullOrEmpty()) extract() else null
        val from = when {
            !explicit.isNullOrEmpty() -> "the file named by -Dtether.library ($explicit)"
            extracted != null -> "the copy this jar carries for $platform ($extracted)"
            else -> "System.loadLibrary(\"tether\")"
        }
        try {
            when {
                !explicit.isNullOrEmpty() -> System.load(explicit)
                extracted != null -> System.load(extracted.absolutePath)
                else -> System.loadLibrary("tether")
            }
        } catch (e: UnsatisfiedLinkError) {
            val carried = NativeLibrary::class.java.classLoader.getResource(resourcePath()) != null
            return if (explicit.isNullOrEmpty() && !carried) {
                "this jar carries no library for $platform (resource ${resourcePath()}) and " +
                    "System.loadLibrary(\"tether\") found none (${e.message}). Build one with " +
                    "`cargo build --release --features jni --lib` and run with " +
                    "-Dtether.library=/path/to/${libraryFile()}, or use a jar built for $platform " +
                    "(kotlin-multiplatform/README: the native/<os>-<arch> resources)."
            } else {
                "$from could not be loaded (${e.message}): it must be a Tether library built for " +
                    "$platform with `cargo build --release --features jni --lib`."
            }
        }
        val version = try {
            NativeBridge.version()
        } catch (e: UnsatisfiedLinkError) {
            return "$from has no JNI exports: it was built without the cargo feature `jni`. " +
                "Build it with `cargo build --release --features jni --lib`."
        }
        if (version != VERSION) {
            return "$from is Tether $version, but this jar needs $VERSION: use the library built " +
                "from the same sources as the jar."
        }
        return null
    }

    fun resourcePath(): String = "dev/tether/native/$platform/${libraryFile()}"

    private fun libraryFile(): String = System.mapLibraryName("tether")

    /** Extracts the jar's library for this platform; null when it carries none. */
    private fun extract(): File? {
        val bytes = NativeLibrary::class.java.classLoader.getResourceAsStream(resourcePath())?.use(InputStream::readBytes)
            ?: return null
        val digest = MessageDigest.getInstance("SHA-256").digest(bytes)
        val hash = digest.take(12).joinToString("") { "%02x".format(it) }
        val base = System.getProperty("tether.extractDir")?.takeIf { it.isNotEmpty() } ?: System.getProperty("java.io.tmpdir")
        val dir = File(base, "tether-$VERSION-$hash")
        val target = File(dir, libraryFile())
        if (target.length() == bytes.size.toLong()) return target
        dir.mkdirs()
        val partial = File.createTempFile("${libraryFile()}.", ".partial", dir)
        try {
            partial.writeBytes(bytes)
            Files.move(partial.toPath(), target.toPath(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING)
        } finally {
            partial.delete()
        }
        return target
    }

    /** `linux-x86_64`, `macos-aarch64`, `windows-x86_64`, …: the jar's resource folders. */
    fun platformName(osName: String, osArch: String): String {
        val os = osName.lowercase()
        val osPart = when {
            os.startsWith("linux") -> "linux"
            os.startsWith("mac") || os.startsWith("darwin") -> "macos"
            os.startsWith("windows") -> "windows"
            else -> os.replace(Regex("[^a-z0-9]+"), "")
        }
        val archPart = when (osArch.lowercase()) {
            "amd64", "x86_64", "x64" -> "x86_64"
            "aarch64", "arm64" -> "aarch64"
            "x86", "i386", "i686" -> "x86"
            "arm", "armv7l" -> "arm"
            else -> osArch.lowercase()
        }
        return "$osPart-$archPart"
    }
}
