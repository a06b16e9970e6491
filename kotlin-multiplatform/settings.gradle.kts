// Gradle build for Kotlin Multiplatform consumers. The tests run with Maven (pom.xml,
// scripts/test-kotlin.sh); this build is the standard KMP layout for apps that use Gradle.
pluginManagement {
    repositories {
        gradlePluginPortal()
        google()
        mavenCentral()
    }
}

dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "tether"
