import dev.tessera.*
import java.io.IOException
import java.security.MessageDigest
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.test.*
import okhttp3.Interceptor
import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.Response
import okio.BufferedSink
import javax.crypto.spec.SecretKeySpec
import org.junit.Assume.assumeTrue
import org.junit.Before
import org.junit.runner.RunWith
import org.junit.runners.Parameterized

/**
 * OkHttp with [TesseraInterceptor] against a real verifier, `tessera serve`,
 * started on loopback by bindings/run.sh (its URL and keys come in as system
 * properties). Skipped when no server is configured.
 *
 * The suite runs twice: with the secret given to Rust (`in-rust`,
 * `newSigner(keyId, secret)`) and with the MAC computed by the platform
 * (`platform`, `Signer.withMacProvider` + [JcaMacProvider] on the JDK's
 * HmacSHA256, as the Android Keystore would compute it).
 */
@RunWith(Parameterized::class)
class EndToEndTest(private val mode: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun modes(): List<Array<Any>> = listOf(arrayOf<Any>("in-rust"), arrayOf<Any>("platform"))
    }

    /** A signer for [id] in this run's mode: [key] given to Rust, or held by a JCA key. */
    private fun newSigner(id: String, key: ByteArray, covered: List<String> = listOf(), required: Boolean = false): Signer =
        if (mode == "platform") Signer.withMacProvider(id, JcaMacProvider(SecretKeySpec(key, "HmacSHA256")), covered, coveredHeadersRequired = required)
        else Signer(id, key.copyOf(), covered, coveredHeadersRequired = required)

    private val base: String? = System.getProperty("tessera.server.url")
    private lateinit var secret: ByteArray
    private lateinit var keyId: String
    private val sent = CopyOnWriteArrayList<Request>()
    private val json = MediaType.parse("application/json")

    @Before fun setUp() {
        assumeTrue("no tessera server configured (tessera.server.url)", base != null)
        keyId = System.getProperty("tessera.key.id")
        secret = hex(System.getProperty("tessera.key.secret_hex"))
    }

    /** Records every request as it goes on the wire. */
    private val recorder = Interceptor { chain -> sent.add(chain.request()); chain.proceed(chain.request()) }

    private fun client(signer: Signer, vararg network: Interceptor): OkHttpClient {
        val b = OkHttpClient.Builder().followRedirects(false).addInterceptor(TesseraInterceptor(signer))
        for (n in network) b.addNetworkInterceptor(n)
        return b.addNetworkInterceptor(recorder).build()
    }

    private fun Response.json(): Map<String, Any?> = use { MiniJson.parse(body()!!.string()).obj() }

    private fun sha256Hex(b: ByteArray) = MessageDigest.getInstance("SHA-256").digest(b).joinToString("") { "%02x".format(it) }

    @Test fun signedGetIsAccepted() {
        newSigner(keyId, secret).use { signer ->
            val r = client(signer).newCall(Request.Builder().url("$base/v1/things/a%2Fb?x=1&y=%20").build()).execute()
            assertEquals(200, r.code())
            val body = r.json()
            assertEquals(keyId, body["key_id"])
            assertEquals("GET", body["method"])
            assertEquals("/v1/things/a%2Fb", body["path"])
        }
    }

    @Test fun methodsAndUrlsAreSignedAsOkHttpSendsThem() {
        newSigner(keyId, secret).use { signer ->
            val c = client(signer)
            // Methods are case-sensitive: "get" goes on the wire, and is signed, as "get".
            for (method in listOf("get", "PaTcH")) {
                val body = if (method == "get") null else RequestBody.create(json, "{}")
                val r = c.newCall(Request.Builder().url("$base/v1/a|b/{c}/^?q={x}|y^").method(method, body).build()).execute()
                val answer = r.json()
                assertEquals(200, r.code(), "$method: $answer")
                assertEquals(method, answer["method"])
                assertEquals(sent.last().url().encodedPath(), answer["path"])
                assertEquals(sent.last().url().encodedQuery(), answer["query"])
            }
            // Userinfo is not sent (OkHttp's Host has none), so it is not signed either.
            val r = c.newCall(Request.Builder().url(base!!.replace("http://", "http://user:pw@") + "/v1/x").build()).execute()
            assertEquals(200, r.code(), r.json().toString())
        }
    }

    @Test fun signedPostWithCoveredContentTypeIsAccepted() {
        newSigner(keyId, secret, listOf("content-type", "x-request-id")).use { signer ->
            val payload = "{\"qty\":1,\"note\":\"héllo\"}".toByteArray()
            val r = client(signer).newCall(
                Request.Builder().url("$base/v1/orders").header("X-Request-Id", "r-1")
                    .post(RequestBody.create(json, payload)).build(),
            ).execute()
            val body = r.json()
            assertEquals(200, r.code(), body.toString())
            assertEquals("POST", body["method"])
            assertEquals(sha256Hex(payload), body["body_sha256"])
        }
    }

    @Test fun aContentTypeHeaderIsSignedWhenTheBodyHasNoMediaType() {
        // OkHttp's bridge keeps the caller's Content-Type when the body has none: it is sent, so it is signed.
        newSigner(keyId, secret, listOf("content-type")).use { signer ->
            val r = client(signer).newCall(
                Request.Builder().url("$base/v1/orders").header("Content-Type", "application/json")
                    .post(RequestBody.create(null, "{}")).build(),
            ).execute()
            val body = r.json()
            assertEquals(200, r.code(), body.toString())
        }
    }

    @Test fun streamingBodyWithPrecomputedDigestIsAccepted() {
        newSigner(keyId, secret).use { signer ->
            val payload = ByteArray(300_000) { (it % 251).toByte() }
            val streaming = object : RequestBody() {
                override fun contentType() = MediaType.parse("application/octet-stream")
                override fun contentLength() = -1L // unknown: sent chunked
                override fun writeTo(sink: BufferedSink) { sink.write(payload) }
            }
            val digest = MessageDigest.getInstance("SHA-256").digest(payload)
            val r = client(signer).newCall(
                Request.Builder().url("$base/upload").put(TesseraStreamingBody(streaming, digest)).build(),
            ).execute()
            val body = r.json()
            assertEquals(200, r.code(), body.toString())
            assertEquals(sha256Hex(payload), body["body_sha256"])
        }
    }

    @Test fun tamperedBodyAndQueryAreRejected() {
        newSigner(keyId, secret).use { signer ->
            val swapBody = Interceptor { chain ->
                chain.proceed(chain.request().newBuilder().post(RequestBody.create(json, "{\"qty\":9}")).build())
            }
            val r1 = client(signer, swapBody).newCall(
                Request.Builder().url("$base/v1/orders").post(RequestBody.create(json, "{\"qty\":1}")).build(),
            ).execute()
            assertEquals(401, r1.code())
            assertEquals("digest_mismatch", r1.json()["code"])

            val changeQuery = Interceptor { chain ->
                val url = chain.request().url().newBuilder().setQueryParameter("limit", "1000").build()
                chain.proceed(chain.request().newBuilder().url(url).build())
            }
            val r2 = client(signer, changeQuery).newCall(Request.Builder().url("$base/v1/orders?limit=10").build()).execute()
            assertEquals(401, r2.code())
            assertEquals("bad_signature", r2.json()["code"])
        }
    }

    @Test fun replayIsRejected() {
        newSigner(keyId, secret).use { signer ->
            val first = client(signer).newCall(Request.Builder().url("$base/v1/once").build()).execute()
            assertEquals(200, first.code())
            first.close()
            // Send the same signed request again, byte for byte, without the interceptor.
            val wire = sent.last()
            val replay = OkHttpClient().newCall(Request.Builder().url(wire.url()).headers(wire.headers()).build()).execute()
            assertEquals(401, replay.code())
            assertEquals("replayed", replay.json()["code"])
        }
    }

    @Test fun clockSkewIsRecoveredWithOneRetry() {
        newSigner(keyId, secret).use { signer ->
            signer.setClockOffset(-3600) // this device's clock is an hour behind the server's
            val r = client(signer).newCall(Request.Builder().url("$base/v1/skew").build()).execute()
            assertEquals(200, r.code(), "after the skew retry")
            r.close()
            assertEquals(2, sent.size, "one rejected attempt, one retry")
            assertTrue(Math.abs(signer.clockOffset()) <= 2, "offset ${signer.clockOffset()}")
            // The first attempt's nonce differs from the retry's.
            assertNotEquals(sent[0].header("Signature-Input"), sent[1].header("Signature-Input"))
        }
    }

    @Test fun forgedChallengeIsNotAdopted() {
        newSigner(keyId, secret).use { signer ->
            signer.setClockOffset(-3600)
            // A man in the middle rewrites the challenge: the MAC no longer verifies.
            val forge = Interceptor { chain ->
                val resp = chain.proceed(chain.request())
                val v = resp.header(SERVER_TIME_HEADER)
                if (v == null) resp else resp.newBuilder().header(SERVER_TIME_HEADER, v.replace(Regex("time=\\d+"), "time=1")).build()
            }
            val r = client(signer, forge).newCall(Request.Builder().url("$base/v1/skew").build()).execute()
            assertEquals(401, r.code())
            assertEquals("clock_skew", r.json()["code"])
            assertEquals(1, sent.size, "no retry")
            assertEquals(-3600L, signer.clockOffset())
        }
    }

    @Test fun wrongKeyAndReadOnlyScopeAreRejected() {
        newSigner(keyId, ByteArray(32) { 7 }).use { signer ->
            val r = client(signer).newCall(Request.Builder().url("$base/v1/x").build()).execute()
            assertEquals(401, r.code())
            assertEquals("bad_signature", r.json()["code"])
        }
        val roId = System.getProperty("tessera.key.ro_id")
        newSigner(roId, hex(System.getProperty("tessera.key.ro_secret_hex"))).use { signer ->
            val ok = client(signer).newCall(Request.Builder().url("$base/v1/x").build()).execute()
            assertEquals(200, ok.code())
            ok.close()
            val r = client(signer).newCall(Request.Builder().url("$base/v1/x").delete().build()).execute()
            assertEquals(403, r.code())
            assertEquals("insufficient_scope", r.json()["code"])
        }
    }

    @Test fun unsignableRequestsFailClosed() {
        newSigner(keyId, secret).use { signer ->
            val big = RequestBody.create(json, ByteArray(2048))
            val small = OkHttpClient.Builder().addInterceptor(TesseraInterceptor(signer, 1024)).addNetworkInterceptor(recorder).build()
            val e = assertFailsWith<IOException> {
                small.newCall(Request.Builder().url("$base/v1/orders").post(big).build()).execute()
            }
            assertTrue(e is TesseraSigningException)
            // A one-shot body (OkHttp 3.14+ declares isOneShot(); found by reflection) is refused.
            val oneShot = object : RequestBody() {
                override fun contentType() = json
                override fun writeTo(sink: BufferedSink) { sink.writeUtf8("{}") }
                @Suppress("unused") fun isOneShot(): Boolean = true
            }
            assertFailsWith<TesseraSigningException> {
                client(signer).newCall(Request.Builder().url("$base/v1/orders").post(oneShot).build()).execute()
            }
            // A required covered header that is absent: nothing is sent.
            newSigner(keyId, secret, listOf("x-required"), required = true).use { strict ->
                val e2 = assertFailsWith<TesseraSigningException> {
                    client(strict).newCall(Request.Builder().url("$base/v1/x").build()).execute()
                }
                assertEquals("missing_component", e2.code)
            }
            // A Host header that names another authority than the URL: OkHttp
            // would send it, and the verifier would sign that Host instead.
            val e3 = assertFailsWith<TesseraSigningException> {
                client(signer).newCall(Request.Builder().url("$base/v1/x").header("Host", "api.example.com").build()).execute()
            }
            assertEquals("authority_mismatch", e3.code)
            assertEquals(0, sent.size, "nothing went on the wire")
        }
    }
}
