// A stand-alone Gradle build for the Tessera Android library (AAR).
// scripts/build-android fills src/main/jniLibs (cargo-ndk) and
// src/generated/kotlin (uniffi-bindgen) first, then runs assembleRelease.
// To use it from an app's build instead, include it as a module:
//   include(":tessera"); project(":tessera").projectDir = file("<repo>/bindings/android")
// and apply the same plugin versions in the app's settings.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    plugins {
        // AGP 8.7 supports compileSdk 35 (Gradle 8.9+); Kotlin 2.1 supports AGP 8.7.
        id("com.android.library") version "8.7.3"
        id("org.jetbrains.kotlin.android") version "2.1.21"
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "tessera"
