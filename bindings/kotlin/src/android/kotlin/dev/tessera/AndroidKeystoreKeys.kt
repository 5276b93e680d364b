// Android-only: importing Tessera's HMAC secret into the Android Keystore.
//
// This source set is compiled only by the Android library module (it needs
// android.jar); bindings/run.sh compiles src/main and src/test for the JVM.
// Everything else, including JcaMacProvider, runs on the plain JVM.
package dev.tessera

import android.annotation.TargetApi
import android.os.Build
import android.security.keystore.KeyProperties
import android.security.keystore.KeyProtection
import android.security.keystore.StrongBoxUnavailableException
import java.security.KeyStore
import java.security.KeyStoreException
import java.security.ProviderException
import javax.crypto.SecretKey
import javax.crypto.spec.SecretKeySpec

/**
 * Puts a Tessera secret into the Android Keystore (API 23+) as an
 * HMAC-SHA256 key for `PURPOSE_SIGN`, in StrongBox where the device has one
 * (API 28+) and in the TEE otherwise, and gives back the Keystore key for
 * [JcaMacProvider]. From then on the MAC is computed in secure hardware and the
 * key bytes cannot be read back by anyone, the app included.
 *
 * Provisioning (spec §5.8): the server issues the secret once, over TLS; the
 * app calls [importHmacKey] at once, which zeroes the caller's array, and keeps
 * no other copy (no logs, no preferences, no backups).
 *
 * ```kotlin
 * val imported = AndroidKeystoreKeys.importHmacKey("tessera-user-42", secretFromServer)
 * val signer = Signer.withMacProvider("user-42-phone", JcaMacProvider(imported.key), listOf("content-type"))
 * // Later runs of the app:
 * val key = AndroidKeystoreKeys.loadHmacKey("tessera-user-42") ?: error("provision again")
 * ```
 */
object AndroidKeystoreKeys {
    /** The JCA provider and `KeyStore` type of the Android Keystore. */
    const val ANDROID_KEYSTORE: String = "AndroidKeyStore"

    /** Where an imported key lives. */
    enum class Location {
        /** A StrongBox secure element (API 28+, devices with `FEATURE_STRONGBOX_KEYSTORE`). */
        STRONGBOX,

        /** The Keystore's default: the TEE on devices with one. */
        DEFAULT,
    }

    /** An imported key: the Keystore [key] to give [JcaMacProvider], and where it was put. */
    class ImportedKey(val key: SecretKey, val location: Location)

    /**
     * Imports [secret] (16 to 128 bytes) under [alias], replacing any key there,
     * and zeroes [secret] whatever happens.
     *
     * With [preferStrongBox] (default) on API 28+, the key is first imported with
     * `setIsStrongBoxBacked(true)`; where the device has no StrongBox
     * ([StrongBoxUnavailableException], directly or as the cause of a
     * `KeyStoreException`), it is imported again without it, into the TEE. Any
     * other failure is thrown as it is.
     *
     * @throws KeyStoreException when the Keystore refuses the key.
     * @throws IllegalArgumentException when [secret] is not 16 to 128 bytes.
     */
    @JvmStatic
    @JvmOverloads
    fun importHmacKey(alias: String, secret: ByteArray, preferStrongBox: Boolean = true): ImportedKey {
        try {
            require(secret.size in 16..128) { "a Tessera secret is 16 to 128 bytes, not ${secret.size}" }
            val keyStore = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }
            // The SecretKeySpec copies the bytes; it is only handed to the Keystore,
            // which copies them into secure hardware, and then dropped.
            val entry = KeyStore.SecretKeyEntry(SecretKeySpec(secret, KeyProperties.KEY_ALGORITHM_HMAC_SHA256))
            var location = Location.DEFAULT
            if (preferStrongBox && Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
                location = importPreferringStrongBox(keyStore, alias, entry)
            } else {
                keyStore.setEntry(alias, entry, protection(strongBox = false))
            }
            val key = keyStore.getKey(alias, null) as? SecretKey
                ?: throw KeyStoreException("the key imported under $alias cannot be read back")
            return ImportedKey(key, location)
        } finally {
            secret.fill(0)
        }
    }

    /** The Keystore key under [alias], or `null` when there is none (provision again). */
    @JvmStatic
    fun loadHmacKey(alias: String): SecretKey? {
        val keyStore = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }
        return keyStore.getKey(alias, null) as? SecretKey
    }

    /** Deletes the key under [alias] (logout, key rotation); nothing happens when there is none. */
    @JvmStatic
    fun deleteHmacKey(alias: String) {
        val keyStore = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }
        if (keyStore.containsAlias(alias)) keyStore.deleteEntry(alias)
    }

    // Its own method: StrongBoxUnavailableException exists from API 28, and a
    // catch clause naming it stays out of code that older releases run.
    @TargetApi(Build.VERSION_CODES.P)
    private fun importPreferringStrongBox(keyStore: KeyStore, alias: String, entry: KeyStore.SecretKeyEntry): Location =
        try {
            keyStore.setEntry(alias, entry, protection(strongBox = true))
            Location.STRONGBOX
        } catch (e: StrongBoxUnavailableException) {
            importDefault(keyStore, alias, entry)
        } catch (e: KeyStoreException) {
            if (!isStrongBoxUnavailable(e)) throw e
            importDefault(keyStore, alias, entry)
        }

    private fun importDefault(keyStore: KeyStore, alias: String, entry: KeyStore.SecretKeyEntry): Location {
        // A failed StrongBox import leaves nothing behind, but make sure.
        if (keyStore.containsAlias(alias)) keyStore.deleteEntry(alias)
        keyStore.setEntry(alias, entry, protection(strongBox = false))
        return Location.DEFAULT
    }

    private fun protection(strongBox: Boolean): KeyProtection {
        // PURPOSE_SIGN covers both uses: MACs over signature bases and over the
        // clock-skew challenges (the comparison is done in Rust).
        val builder = KeyProtection.Builder(KeyProperties.PURPOSE_SIGN)
            .setDigests(KeyProperties.DIGEST_SHA256)
        if (strongBox) strongBoxBacked(builder)
        return builder.build()
    }

    @TargetApi(Build.VERSION_CODES.P)
    private fun strongBoxBacked(builder: KeyProtection.Builder) {
        builder.setIsStrongBoxBacked(true)
    }

    /**
     * `true` when the import failed only because StrongBox is missing: the
     * Keystore reports that as a [StrongBoxUnavailableException] somewhere in the
     * cause chain (a `ProviderException`), or, on older releases, as keystore
     * error code -68 (`HARDWARE_TYPE_UNAVAILABLE`) in the message.
     */
    @TargetApi(Build.VERSION_CODES.P)
    private fun isStrongBoxUnavailable(e: Throwable): Boolean {
        var t: Throwable? = e
        while (t != null) {
            if (t is StrongBoxUnavailableException) return true
            if (t !is ProviderException && t.message?.contains("-68") == true) return true
            t = t.cause
        }
        return false
    }
}
