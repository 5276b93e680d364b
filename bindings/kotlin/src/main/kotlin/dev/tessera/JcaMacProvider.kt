// A MacProvider on javax.crypto.Mac: the JDK's HmacSHA256 on the JVM, the
// Android Keystore's on Android (the key then never leaves secure hardware).
package dev.tessera

import java.security.GeneralSecurityException
import java.security.Key
import javax.crypto.Mac

/**
 * Computes Tessera's HMAC-SHA256 with `javax.crypto.Mac`, so that the secret can
 * stay in a key store. Pass it to [Signer.withMacProvider]:
 *
 * ```kotlin
 * // Android: the key imported once with AndroidKeystoreKeys.importHmacKey.
 * val key = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }.getKey("tessera", null)
 * val signer = Signer.withMacProvider("user-42-phone", JcaMacProvider(key), listOf("content-type"))
 * ```
 *
 * On Android, [key] is the `SecretKey` read back from `AndroidKeyStore`
 * (`KeyStore.getKey(alias, null)`): the MAC is computed inside the TEE or
 * StrongBox and the key bytes are never in app memory. On the JVM (tests,
 * servers), any `HmacSHA256` key works, for example
 * `SecretKeySpec(secret, "HmacSHA256")`; that key then lives in app memory.
 *
 * [provider] names a JCA provider; `null` (default) lets the JCA choose, which
 * on Android selects the Keystore's implementation for a Keystore key.
 *
 * Thread-safe: `Mac` objects are not, so each call gets its own (one
 * `Mac.getInstance` + `init` per signature, a few microseconds on the JVM; the
 * Keystore's own IPC costs more than that). Any failure, such as a key deleted
 * or invalidated (`KeyPermanentlyInvalidatedException`), a locked device
 * (`UserNotAuthenticatedException`), or an unknown provider, becomes
 * [MacProviderException.Failed] with the exception's class and message; signing
 * then fails with [TesseraException.MacFailed] and nothing is sent.
 */
class JcaMacProvider @JvmOverloads constructor(
    private val key: Key,
    private val provider: String? = null,
) : MacProvider {

    override fun mac(message: ByteArray): ByteArray {
        try {
            val mac = if (provider == null) Mac.getInstance(ALGORITHM) else Mac.getInstance(ALGORITHM, provider)
            mac.init(key)
            return mac.doFinal(message)
        } catch (e: GeneralSecurityException) {
            throw MacProviderException.Failed("${e.javaClass.name}: ${e.message}")
        } catch (e: RuntimeException) {
            // ProviderException (Android Keystore errors), IllegalStateException, ...
            throw MacProviderException.Failed("${e.javaClass.name}: ${e.message}")
        }
    }

    companion object {
        /** The JCA name of HMAC-SHA256 (also `KeyProperties.KEY_ALGORITHM_HMAC_SHA256`). */
        const val ALGORITHM: String = "HmacSHA256"
    }
}
