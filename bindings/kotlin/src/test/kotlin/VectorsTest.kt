import dev.tessera.*
import java.io.File
import java.util.Base64
import kotlin.test.*
import org.junit.Assume.assumeTrue
import org.junit.runner.RunWith
import org.junit.runners.Parameterized

/**
 * Every positive tessera-v1 vector of spec/vectors, signed from Kotlin through
 * the FFI with the vector's key, covered headers, created, nonce and expires:
 * the signature base, Signature-Input, Signature and Content-Digest must match,
 * and the platform-MAC mode (`Signer.withMacProvider` + [JcaMacProvider]) must
 * give byte-identical headers.
 */
@RunWith(Parameterized::class)
class VectorsTest(private val name: String) {
    companion object {
        val dir: File = File(System.getProperty("tessera.vectors.dir") ?: "spec/vectors")

        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun cases(): List<Array<Any>> {
            val names = dir.listFiles()!!.map { it.name }.filter { it.startsWith("pos-") }.sorted()
            require(names.size >= 80) { "expected the spec's positive vectors in $dir, found ${names.size}" }
            return names.map { arrayOf<Any>(it) }
        }
    }

    @Test fun signsLikeTheVector() {
        val case = MiniJson.parse(File(dir, "$name/case.json").readText()).obj()
        assumeTrue("the generic RFC 9421 example is not a tessera-v1 request", case["kind"] == "tessera-v1")
        val req = case["request"].obj()
        val key = case["key"].obj()
        val sign = case["sign"].obj()
        val expected = case["expected"].obj()
        val request = HttpRequest(
            req["method"] as String,
            req["target_uri"] as String,
            req["headers"].list().map { val h = it.list(); HttpHeader(h[0] as String, h[1] as String) },
            Base64.getDecoder().decode(req["body_base64"] as String),
        )
        val extra = sign["extra_components"].list().map { it as String }
        Signer(key["id"] as String, hex(key["secret_hex"] as String), extra, coveredHeadersRequired = true).use { signer ->
            val signed = signer.signAt(request, sign["created"] as Long, sign["nonce"] as String, sign["expires"] as Long?)
            val got = signed.headers.associate { it.name to it.value }
            assertEquals(expected["content_digest"], got["content-digest"], "content-digest")
            assertEquals(expected["signature_input"], got["signature-input"], "signature-input")
            assertEquals(expected["signature"], got["signature"], "signature")
            assertEquals(expected["signature_base"], signer.signatureBase(request, signed), "signature base")
            // Platform mode: the same key held by a JCA key (the JDK's HmacSHA256 here, the
            // Android Keystore on a phone) gives byte-identical headers.
            val jcaKey = javax.crypto.spec.SecretKeySpec(hex(key["secret_hex"] as String), "HmacSHA256")
            Signer.withMacProvider(key["id"] as String, JcaMacProvider(jcaKey), extra, coveredHeadersRequired = true).use { platform ->
                val viaPlatform = platform.signAt(request, sign["created"] as Long, sign["nonce"] as String, sign["expires"] as Long?)
                assertEquals(signed, viaPlatform, "platform-MAC headers")
                assertEquals(expected["signature_base"], platform.signatureBase(request, viaPlatform), "platform signature base")
            }
        }
    }
}

/**
 * Every `unsignable-*` vector of spec/vectors through the FFI from Kotlin: the
 * signer (its constructor, or signing) must refuse the case with the vector's
 * `sign_error`, the code a verifier gives the same request. Nothing is signed.
 */
@RunWith(Parameterized::class)
class UnsignableVectorsTest(private val name: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun cases(): List<Array<Any>> {
            val names = VectorsTest.dir.listFiles()!!.map { it.name }.filter { it.startsWith("unsignable-") }.sorted()
            require(names.size >= 20) { "expected the spec's unsignable vectors in ${VectorsTest.dir}, found ${names.size}" }
            return names.map { arrayOf<Any>(it) }
        }
    }

    @Test fun isRefusedWithTheVectorsCode() {
        val case = MiniJson.parse(File(VectorsTest.dir, "$name/case.json").readText()).obj()
        val req = case["request"].obj()
        val key = case["key"].obj()
        val sign = case["sign"].obj()
        val expected = case["expected"].obj()["sign_error"] as String
        val request = HttpRequest(
            req["method"] as String,
            req["target_uri"] as String,
            req["headers"].list().map { val h = it.list(); HttpHeader(h[0] as String, h[1] as String) },
            Base64.getDecoder().decode(req["body_base64"] as String),
        )
        val extra = sign["extra_components"].list().map { it as String }
        val e = assertFailsWith<TesseraException>("$name must not sign") {
            Signer(key["id"] as String, hex(key["secret_hex"] as String), extra, coveredHeadersRequired = true).use { signer ->
                signer.signAt(request, sign["created"] as Long, sign["nonce"] as String, sign["expires"] as Long?)
            }
        }
        assertEquals(expected, e.code, e.detail)
    }
}
