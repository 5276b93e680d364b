import dev.tessera.*
import java.io.File
import java.util.UUID
import java.util.concurrent.CopyOnWriteArrayList
import javax.crypto.spec.SecretKeySpec
import kotlin.test.*
import okhttp3.Interceptor
import okhttp3.OkHttpClient
import okhttp3.Request
import org.junit.Assume.assumeTrue

/**
 * The platform-MAC mode from Kotlin: [Signer.withMacProvider] with a
 * [JcaMacProvider] on the JDK's `HmacSHA256` (on Android the same class takes an
 * `AndroidKeyStore` key), and providers that fail.
 */
class PlatformKeyTest {
    private val secret = ByteArray(32) { (it * 7 + 3).toByte() }
    private val request = HttpRequest(
        "POST", "https://api.example.com/v1/orders?dry_run=1",
        listOf(HttpHeader("Content-Type", "application/json")), "{\"qty\":1}".toByteArray(),
    )

    private fun platform(provider: MacProvider, covered: List<String> = listOf()) =
        Signer.withMacProvider("phone-1", provider, covered)

    @Test fun jcaProviderSignsLikeTheInRustKey() {
        Signer("phone-1", secret.copyOf(), listOf("content-type")).use { inRust ->
            platform(JcaMacProvider(SecretKeySpec(secret, "HmacSHA256")), listOf("content-type")).use { p ->
                val a = inRust.signAt(request, 1_700_000_000, "AAAAAAAAAAAAAAAAAAAAAA", 1_700_000_060)
                val b = p.signAt(request, 1_700_000_000, "AAAAAAAAAAAAAAAAAAAAAA", 1_700_000_060)
                assertEquals(a, b)
                assertEquals(listOf("content-type"), p.coveredHeaders())
                assertEquals("phone-1", p.keyId())
            }
        }
    }

    @Test fun aNamedJcaProviderIsUsed() {
        val p = JcaMacProvider(SecretKeySpec(secret, "HmacSHA256"), "SunJCE")
        assertEquals(32, p.mac("x".toByteArray()).size)
        val missing = JcaMacProvider(SecretKeySpec(secret, "HmacSHA256"), "NoSuchProvider")
        val e = assertFailsWith<MacProviderException.Failed> { missing.mac("x".toByteArray()) }
        assertTrue(e.reason.contains("NoSuchProviderException"), e.reason)
    }

    @Test fun failingProvidersGiveANamedErrorAndNoHeaders() {
        val throwsDeclared = object : MacProvider {
            override fun mac(message: ByteArray): ByteArray = throw MacProviderException.Failed("key store locked")
        }
        val throwsOther = object : MacProvider {
            override fun mac(message: ByteArray): ByteArray = throw IllegalStateException("device locked")
        }
        val short = object : MacProvider {
            override fun mac(message: ByteArray): ByteArray = ByteArray(20)
        }
        // A key the JDK's HmacSHA256 refuses: an AES key is fine, a null-algorithm key is not.
        val wrongKey = JcaMacProvider(object : java.security.Key {
            override fun getAlgorithm() = "RSA"
            override fun getFormat() = "RAW"
            override fun getEncoded() = null
        })
        for ((provider, code, text) in listOf(
            Triple(throwsDeclared, "mac_provider_failed", "key store locked"),
            Triple(throwsOther, "mac_provider_failed", "device locked"),
            Triple(short, "mac_wrong_length", "20 bytes"),
            Triple(wrongKey, "mac_provider_failed", "InvalidKeyException"),
        )) {
            platform(provider).use { s ->
                val e = assertFailsWith<TesseraException.MacFailed> { s.sign(request) }
                assertEquals(code, e.code)
                assertTrue(e.detail.contains(text), e.detail)
                // The challenge check goes through the same provider and fails the same way.
                val c = assertFailsWith<TesseraException.MacFailed> {
                    s.applySkewChallenge(
                        "time=1, keyid=\"phone-1\", nonce=\"AAAAAAAAAAAAAAAAAAAAAA\", mac=:AAAA:",
                        "AAAAAAAAAAAAAAAAAAAAAA",
                    )
                }
                assertEquals(code, c.code)
                assertEquals(0L, s.clockOffset())
            }
        }
    }

    /**
     * OkHttp against `tessera serve`: a provider that throws fails the call with
     * a [TesseraSigningException] before any connection is made, and the
     * server's access log (bindings/run.sh passes its path) never shows the
     * request, while the requests sent before and after it are there.
     */
    @Test fun nothingIsSentWhenTheProviderThrows() {
        val base = System.getProperty("tessera.server.url")
        val log = System.getProperty("tessera.server.log")
        assumeTrue("no tessera server configured (tessera.server.url, tessera.server.log)", base != null && log != null)
        val keyId = System.getProperty("tessera.key.id")
        val key = SecretKeySpec(hex(System.getProperty("tessera.key.secret_hex")), "HmacSHA256")
        val wire = CopyOnWriteArrayList<Request>()
        fun client(s: Signer) = OkHttpClient.Builder().tessera(TesseraInterceptor(s))
            .addNetworkInterceptor(Interceptor { chain -> wire.add(chain.request()); chain.proceed(chain.request()) })
            .build()
        val run = UUID.randomUUID().toString()
        fun served(path: String): Boolean = File(log).readLines().any { it.contains(path) }
        fun awaitServed(path: String) {
            val end = System.nanoTime() + 5_000_000_000
            while (!served(path)) {
                assertTrue(System.nanoTime() < end, "$path never reached the server's access log")
                Thread.sleep(20)
            }
        }

        Signer.withMacProvider(keyId, JcaMacProvider(key)).use { good ->
            client(good).newCall(Request.Builder().url("$base/v1/before-$run").build()).execute().use {
                assertEquals(200, it.code())
            }
        }
        awaitServed("/v1/before-$run")
        val sentBefore = wire.size

        val failing = object : MacProvider {
            override fun mac(message: ByteArray): ByteArray = throw MacProviderException.Failed("KeyPermanentlyInvalidatedException")
        }
        Signer.withMacProvider(keyId, failing).use { bad ->
            val e = assertFailsWith<TesseraSigningException> {
                client(bad).newCall(Request.Builder().url("$base/v1/never-$run").build()).execute()
            }
            assertEquals("mac_provider_failed", e.code)
            assertTrue(e.message!!.contains("KeyPermanentlyInvalidatedException"), e.message)
        }
        assertEquals(sentBefore, wire.size, "nothing went on the wire")

        Signer.withMacProvider(keyId, JcaMacProvider(key)).use { good ->
            client(good).newCall(Request.Builder().url("$base/v1/after-$run").build()).execute().use {
                assertEquals(200, it.code())
            }
        }
        awaitServed("/v1/after-$run")
        assertFalse(served("/v1/never-$run"), "the server saw the request whose MAC failed")
    }
}
