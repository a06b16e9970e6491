// Tether's Kotlin façade for Gradle Kotlin Multiplatform builds.
//
//   commonMain   the Ktor-like API (TetherClient, TetherSession, Frame, TetherError, …)
//   jvmMain      the JNI binding (also compiled into androidMain, see below)
//   nativeMain   iOS and Linux: the cinterop binding on include/tether.h
//
// The native library: JVM tests load ../target/debug/libtether.so built by
// `cargo build --features jni --lib`; the JVM jar carries one per platform as the resource
// dev/tether/native/<os>-<arch>/ (staged under build/native-resources, as
// scripts/test-kotlin.sh stages target/native-resources for Maven); an Android app packages
// libtether.so per ABI in src/androidMain/jniLibs/<abi>/ (scripts/build-android.sh builds
// them with the Android NDK, feature `jni`, and lays out an AAR).
plugins {
    kotlin("multiplatform") version "2.1.21"
    kotlin("plugin.serialization") version "2.1.21"
    id("com.android.library") version "8.7.3"
}

group = "dev.tether"
version = "0.1.0"

kotlin {
    explicitApi()
    jvmToolchain(17)

    jvm()
    androidTarget {
        publishLibraryVariants("release")
    }
    // Each native target links the libtether.a that cargo builds for its Rust
    // triple: `cargo build --release --lib --target <triple>` (scripts/build-apple.sh
    // does it for the iOS triples).
    val rustTriples = mapOf(
        iosArm64() to "aarch64-apple-ios",
        iosSimulatorArm64() to "aarch64-apple-ios-sim",
        iosX64() to "x86_64-apple-ios",
        linuxX64() to "x86_64-unknown-linux-gnu",
    )
    rustTriples.forEach { (target, triple) ->
        target.compilations.getByName("main").cinterops.create("tether") {
            defFile(project.file("src/nativeInterop/cinterop/tether.def"))
            includeDirs(project.file("../include"))
            extraOpts("-libraryPath", project.file("../target/$triple/release").absolutePath)
        }
    }

    sourceSets {
        commonMain.dependencies {
            implementation("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.10.2")
            // The API names KSerializer and SerialFormat: apps see it.
            api("org.jetbrains.kotlinx:kotlinx-serialization-core:1.8.1")
        }
        commonTest.dependencies {
            implementation("org.jetbrains.kotlinx:kotlinx-serialization-json:1.8.1")
        }
        jvmMain {
            resources.srcDir(layout.buildDirectory.dir("native-resources"))
        }
        // Android runs the same JNI binding as the JVM.
        androidMain {
            kotlin.srcDir("src/jvmMain/kotlin")
        }
        jvmTest.dependencies {
            implementation("org.jetbrains.kotlinx:kotlinx-coroutines-test:1.10.2")
            implementation("org.junit.jupiter:junit-jupiter:5.11.4")
            implementation("org.jetbrains.kotlinx:kotlinx-serialization-protobuf:1.8.1")
            implementation("org.jetbrains.kotlinx:kotlinx-serialization-cbor:1.8.1")
            runtimeOnly("org.junit.platform:junit-platform-launcher")
        }
    }
}

tasks.named<Test>("jvmTest") {
    useJUnitPlatform()
    systemProperty("tether.library", file("../target/debug/libtether.so").absolutePath)
}

android {
    namespace = "dev.tether"
    compileSdk = 35
    defaultConfig {
        minSdk = 24
    }
    sourceSets["main"].jniLibs.srcDirs("src/androidMain/jniLibs")
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}
