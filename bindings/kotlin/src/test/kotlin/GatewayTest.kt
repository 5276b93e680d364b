import dev.tessera.*
import java.io.File
import java.util.UUID
import javax.crypto.spec.SecretKeySpec
import kotlin.test.*
import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import org.junit.Assume.assumeTrue
import org.junit.Before
import org.junit.runner.RunWith
import org.junit.runners.Parameterized

/**
 * OkHttp with [TesseraInterceptor] through `tessera gateway` to an upstream
 * that is not Rust (crates/tessera-gateway/tests/upstream.py, a Python
 * standard-library server echoing what reached it). bindings/run.sh starts
 * both and passes the gateway URL and the upstream's request log as system
 * properties. Runs with the secret in Rust and with the MAC by the platform.
 */
@RunWith(Parameterized::class)
class GatewayTest(private val mode: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun modes(): List<Array<Any>> = listOf(arrayOf<Any>("in-rust"), arrayOf<Any>("platform"))
    }

    private val base: String? = System.getProperty("tessera.gateway.url")
    private val upstreamLog: String? = System.getProperty("tessera.gateway.upstream_log")
    private lateinit var keyId: String
    private lateinit var secret: ByteArray
    private val json = MediaType.parse("application/json")

    @Before fun setUp() {
        assumeTrue("no gateway configured (tessera.gateway.url)", base != null && upstreamLog != null)
        keyId = System.getProperty("tessera.key.id")
        secret = hex(System.getProperty("tessera.key.secret_hex"))
    }

    private fun signer(): Signer =
        if (mode == "platform") Signer.withMacProvider(keyId, JcaMacProvider(SecretKeySpec(secret, "HmacSHA256")), listOf())
        else Signer(keyId, secret.copyOf(), listOf())

    private fun client(signer: Signer) = OkHttpClient.Builder().addInterceptor(TesseraInterceptor(signer)).build()

    /** The upstream's echo: header values by lower-case name. */
    private fun echoedHeaders(echo: Map<String, Any?>): Map<String, List<String>> =
        echo["headers"].list().map { it.list() }.groupBy({ (it[0] as String).lowercase() }, { it[1] as String })

    @Test fun signedRequestsReachTheUpstreamWithTheVerifiedIdentity() {
        signer().use { s ->
            val c = client(s)
            val path = "/v1/orders/${UUID.randomUUID()}?limit=5"
            // A client-sent identity header must be replaced, never passed on.
            val get = c.newCall(Request.Builder().url("$base$path").header("Tessera-Owner", "mallory").build()).execute()
            val echo = get.use { r ->
                val text = r.body()!!.string()
                assertEquals(200, r.code(), text)
                MiniJson.parse(text).obj()
            }
            assertEquals("GET", echo["method"])
            assertEquals(path, echo["path"])
            val headers = echoedHeaders(echo)
            assertEquals(listOf(keyId), headers["tessera-key-id"])
            assertEquals(listOf("bindings"), headers["tessera-owner"], "$headers")

            val body = """{"item":"book","qty":1,"mode":"$mode"}"""
            val post = c.newCall(Request.Builder().url("$base/v1/orders").post(RequestBody.create(json, body)).build()).execute()
            post.use { r ->
                assertEquals(200, r.code())
                val e = MiniJson.parse(r.body()!!.string()).obj()
                assertEquals("POST", e["method"])
                assertEquals(body, e["body"])
            }
        }
    }

    @Test fun anUnsignedRequestIsAnsweredByTheGatewayAndNeverForwarded() {
        val path = "/v1/never-forwarded/${UUID.randomUUID()}"
        OkHttpClient().newCall(Request.Builder().url("$base$path").build()).execute().use { r ->
            assertEquals(401, r.code())
            assertEquals("application/problem+json", r.header("Content-Type")?.substringBefore(';'))
            assertNotNull(r.header("WWW-Authenticate"))
        }
        assertFalse(File(upstreamLog!!).readText().contains(path), "the upstream saw an unsigned request")
    }
}
