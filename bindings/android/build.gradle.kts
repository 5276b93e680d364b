// The Tessera Android library: the hand-written Kotlin from bindings/kotlin
// (shared with the JVM tests, not copied), the UniFFI-generated bindings and
// libtessera_ffi.so for four ABIs, both produced by scripts/build-android.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.tessera"
    compileSdk = 35

    defaultConfig {
        // 23: the Android Keystore holds HMAC-SHA256 keys
        // (KeyProperties.KEY_ALGORITHM_HMAC_SHA256) from API 23 on.
        minSdk = 23
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            kotlin.srcDirs(
                // Signer helpers, TesseraInterceptor, MacProvider: JVM and Android.
                "../kotlin/src/main/kotlin",
                // Android-only calls (Keystore key import, StrongBox fallback).
                "../kotlin/src/android/kotlin",
                // dev/tessera/tessera_ffi.kt from uniffi-bindgen (scripts/build-android).
                "src/generated/kotlin",
            )
            // libtessera_ffi.so per ABI: cargo-ndk's -o directory (scripts/build-android).
            jniLibs.srcDirs("src/main/jniLibs")
        }
    }

    buildTypes {
        release {
            // A library is shrunk by the app that uses it, with consumer-rules.pro.
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    // The .so files are stripped by scripts/build-android; keep AGP from
    // looking for an NDK strip tool of its own.
    packaging {
        jniLibs.keepDebugSymbols += "**/libtessera_ffi.so"
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // The AAR, not the jar: it carries libjnidispatch.so for every Android ABI.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    // compileOnly: the app chooses its OkHttp (3.x, 4.x or 5.x) and the AAR
    // never changes it; an app without OkHttp uses Signer directly. Compiled
    // against the last 3.x: the interceptor calls the Java-style API
    // (request.body(), response.code()) that 4.x and 5.x keep for binary
    // compatibility, while their Kotlin API refuses those calls in source.
    compileOnly("com.squareup.okhttp3:okhttp:3.14.9")
}

// Fail early, with the fix, when the generated parts are missing. Plain
// File values only in the action (configuration-cache safe).
tasks.named("preBuild") {
    val bindings = file("src/generated/kotlin/dev/tessera/tessera_ffi.kt")
    val jniLibs = file("src/main/jniLibs")
    doFirst {
        val abis = listOf("arm64-v8a", "armeabi-v7a", "x86_64", "x86")
        val missing = abis.filter { !jniLibs.resolve("$it/libtessera_ffi.so").isFile }
        if (!bindings.isFile || missing.isNotEmpty()) {
            throw GradleException(
                "the Rust library or its bindings are missing (generated bindings present: " +
                    "${bindings.isFile}; ABIs without libtessera_ffi.so: $missing): " +
                    "run scripts/build-android from the repository root",
            )
        }
    }
}
