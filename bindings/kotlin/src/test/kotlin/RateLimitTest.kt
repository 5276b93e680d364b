import dev.tessera.*
import java.util.concurrent.TimeUnit
import kotlin.test.*
import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Protocol
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.Response
import org.junit.After
import org.junit.Assume.assumeTrue
import org.junit.Before

/** [TesseraRateLimited] read from a response head; no server needed. */
class RateLimitedParseTest {
    private fun response(code: Int, vararg headers: Pair<String, String>): Response {
        val b = Response.Builder().request(Request.Builder().url("http://127.0.0.1/").build())
            .protocol(Protocol.HTTP_1_1).code(code).message("x")
        for ((n, v) in headers) b.addHeader(n, v)
        return b.build()
    }

    @Test fun readsRetryAfterPolicyAndRemainingFrom429Only() {
        val head = arrayOf("Retry-After" to "30", "RateLimit-Policy" to "\"default\";q=2;w=60", "RateLimit" to "\"default\";r=0;t=60")
        assertEquals(TesseraRateLimited(30, "default", 0), TesseraRateLimited.from(response(429, *head)))
        assertEquals(java.time.Duration.ofSeconds(30), TesseraRateLimited.from(response(429, *head))!!.retryAfter)
        assertNull(TesseraRateLimited.from(response(200, *head)), "admitted responses carry RateLimit too")
        assertNull(TesseraRateLimited.from(response(503, *head)))
        assertEquals(TesseraRateLimited(null, null, null), TesseraRateLimited.from(response(429)))
    }

    @Test fun toleratesOtherForms() {
        // An HTTP date is not delta-seconds: no delay (the interceptor does not wait on it).
        assertNull(TesseraRateLimited.parse(429, "Wed, 21 Oct 2026 07:28:00 GMT", null)!!.retryAfterSeconds)
        assertNull(TesseraRateLimited.parse(429, "-1", null)!!.retryAfterSeconds)
        assertEquals(7, TesseraRateLimited.parse(429, " 7 ", null)!!.retryAfterSeconds)
        // Several plans: the spent one (r=0); a token name; quoted commas and semicolons.
        assertEquals(
            TesseraRateLimited(1, "per-key", 0),
            TesseraRateLimited.parse(429, "1", "\"owner\";r=40;t=2, \"per-key\";r=0;t=1"),
        )
        assertEquals(TesseraRateLimited(1, "burst", 3), TesseraRateLimited.parse(429, "1", "burst;t=1;r=3"))
        assertEquals(TesseraRateLimited(1, "a,b;c", 0), TesseraRateLimited.parse(429, "1", "\"a,b;c\";r=0"))
        assertEquals(TesseraRateLimited(1, "x", null), TesseraRateLimited.parse(429, "1", "\"x\";r=many"))
    }
}

/**
 * `429 rate_limited` from a real verifier: `tessera serve --rate-limit 1/s
 * --burst 1`, started by bindings/run.sh (`tessera.ratelimit.url`), reached
 * through [FaultProxy], which records every `Signature` and status. One key,
 * one request a second: after an accepted request the next one within the
 * second is refused with `Retry-After: 1`.
 *
 * The injected-429 tests use the unlimited verifier (`tessera.server.url`) and
 * [FaultProxy.Action.RATE_LIMITED], for the cases a real limiter cannot be cued
 * into (a second 429 in a row).
 */
class RateLimitTest {
    private val limited: String? = System.getProperty("tessera.ratelimit.url")
    private val unlimited: String? = System.getProperty("tessera.server.url")
    private lateinit var signer: Signer
    private lateinit var proxy: FaultProxy
    private lateinit var base: String
    private val json = MediaType.parse("application/json")

    @Before fun setUp() {
        assumeTrue("no rate-limited tessera server configured (tessera.ratelimit.url)", limited != null && unlimited != null)
        signer = Signer(System.getProperty("tessera.key.id"), hex(System.getProperty("tessera.key.secret_hex")))
    }

    @After fun tearDown() {
        if (limited == null || unlimited == null) return
        if (::proxy.isInitialized) proxy.close()
        signer.close()
    }

    private fun via(url: String) {
        base = url
        proxy = FaultProxy(url)
    }

    private fun client(waitMillis: Long = 0, maxRetries: Int = 0): OkHttpClient =
        OkHttpClient.Builder()
            .tessera(TesseraInterceptor(signer, maxRetries = maxRetries, retryBackoffMillis = 10, maxRateLimitWaitMillis = waitMillis))
            .proxy(proxy.proxy).readTimeout(10, TimeUnit.SECONDS).connectTimeout(5, TimeUnit.SECONDS).build()

    private fun get(c: OkHttpClient, path: String): Response = c.newCall(Request.Builder().url("$base$path").build()).execute()

    private fun problemCode(r: Response): String? =
        r.use { Regex("\"code\"\\s*:\\s*\"([a-z_]+)\"").find(it.body()!!.string())?.groupValues?.get(1) }

    /**
     * Spends the key's budget: sends until one request is accepted (waiting out
     * any 429 from an earlier test), so the next request within a second is refused.
     */
    private fun spend(c: OkHttpClient) {
        repeat(5) {
            get(c, "/v1/spend").use { r ->
                if (r.code() == 200) return
                assertEquals(429, r.code())
                Thread.sleep(1000 * (TesseraRateLimited.from(r)!!.retryAfterSeconds ?: 1))
            }
        }
        fail("the rate-limited verifier never accepted a request: ${proxy.seen}")
    }

    private fun assertNoSignatureSentTwice() {
        val signatures = proxy.seen.map { assertNotNull(it.signature, "every request is signed") }
        assertEquals(signatures.size, signatures.toSet().size, "a signature went out twice: ${proxy.seen}")
        val inputs = proxy.seen.map { it.signatureInput }
        assertEquals(inputs.size, inputs.toSet().size, "a nonce/created pair went out twice: ${proxy.seen}")
    }

    private fun millisSince(start: Long) = (System.nanoTime() - start) / 1_000_000

    // ---- a real limiter --------------------------------------------------------------

    @Test fun by_default_the_429_is_returned_with_its_retry_after_and_plan() {
        via(limited!!)
        val c = client()
        spend(c)
        val before = proxy.seen.size
        val start = System.nanoTime()
        val r = get(c, "/v1/limited")
        val elapsed = millisSince(start)
        assertEquals(429, r.code())
        assertEquals(TesseraRateLimited(retryAfterSeconds = 1, policy = "default", remaining = 0), TesseraRateLimited.from(r))
        assertEquals("\"default\";q=1;w=1", r.header("RateLimit-Policy"))
        assertEquals("rate_limited", problemCode(r))
        assertTrue(elapsed < 900, "returned at once, not waited: $elapsed ms")
        assertEquals(listOf(429), proxy.seen.drop(before).map { it.upstreamStatus }, "sent once, not retried: ${proxy.seen}")
        assertNoSignatureSentTwice()
    }

    @Test fun with_the_wait_on_the_request_is_retried_once_signed_afresh_after_retry_after() {
        via(limited!!)
        val c = client(waitMillis = 2000)
        spend(c)
        val before = proxy.seen.size
        val payload = "{\"qty\":3}".toByteArray()
        val start = System.nanoTime()
        // A POST too: the verifier refused it before the application saw it.
        val r = c.newCall(Request.Builder().url("$base/v1/orders").post(RequestBody.create(json, payload)).build()).execute()
        val elapsed = millisSince(start)
        val answer = r.use { assertEquals(200, it.code(), "the retry after Retry-After is accepted"); MiniJson.parse(it.body()!!.string()).obj() }
        assertEquals("POST", answer["method"])
        assertEquals(
            java.security.MessageDigest.getInstance("SHA-256").digest(payload).joinToString("") { "%02x".format(it) },
            answer["body_sha256"],
            "the body went out again intact",
        )
        assertTrue(elapsed >= 1000, "waited Retry-After (1 s) before the retry: $elapsed ms")
        assertTrue(elapsed < 5000, "one wait only: $elapsed ms")
        val mine = proxy.seen.drop(before)
        assertEquals(listOf(429, 200), mine.map { it.upstreamStatus }, "${proxy.seen}")
        assertEquals(listOf("POST", "POST"), mine.map { it.method })
        assertNoSignatureSentTwice()
        val created = mine.map { Regex(";created=(\\d+)").find(it.signatureInput!!)!!.groupValues[1].toLong() }
        assertTrue(created[1] > created[0], "the retry was signed after the wait: $created")
    }

    @Test fun a_cap_below_retry_after_returns_the_429_at_once() {
        via(limited!!)
        val c = client(waitMillis = 999)
        spend(c)
        val before = proxy.seen.size
        val start = System.nanoTime()
        val r = get(c, "/v1/limited")
        val elapsed = millisSince(start)
        assertEquals(429, r.code())
        assertEquals(1, TesseraRateLimited.from(r)!!.retryAfterSeconds)
        r.close()
        assertTrue(elapsed < 900, "Retry-After 1 s is over the 999 ms cap: returned at once, not waited ($elapsed ms)")
        assertEquals(listOf(429), proxy.seen.drop(before).map { it.upstreamStatus }, "${proxy.seen}")
        assertNoSignatureSentTwice()
    }

    // ---- injected 429s -----------------------------------------------------------------

    @Test fun at_most_one_wait_per_call_a_second_429_is_returned() {
        via(unlimited!!)
        val c = client(waitMillis = 5000, maxRetries = 3)
        proxy.script(FaultProxy.Action.RATE_LIMITED, FaultProxy.Action.RATE_LIMITED, FaultProxy.Action.FORWARD)
        val start = System.nanoTime()
        val r = get(c, "/v1/x")
        val elapsed = millisSince(start)
        assertEquals(429, r.code(), "the second 429 comes back; maxRetries does not retry a 429")
        assertEquals(TesseraRateLimited(1, "default", 0), TesseraRateLimited.from(r))
        r.close()
        assertEquals(2, proxy.seen.size, "${proxy.seen}")
        assertTrue(elapsed in 1000..4999, "one wait of Retry-After: $elapsed ms")
        assertNoSignatureSentTwice()
    }

    @Test fun a_one_shot_body_is_not_retried_after_a_429() {
        via(unlimited!!)
        val c = client(waitMillis = 5000)
        proxy.script(FaultProxy.Action.RATE_LIMITED)
        val payload = "streamed".toByteArray()
        val sha = java.security.MessageDigest.getInstance("SHA-256").digest(payload)
        val oneShot = object : RequestBody() {
            override fun contentType() = json
            override fun contentLength() = payload.size.toLong()
            override fun writeTo(sink: okio.BufferedSink) { sink.write(payload) }
            @Suppress("unused") fun isOneShot() = true // OkHttp 3.14+; read by reflection
        }
        val r = c.newCall(Request.Builder().url("$base/v1/upload").put(TesseraStreamingBody(oneShot, sha)).build()).execute()
        assertEquals(429, r.code())
        r.close()
        assertEquals(1, proxy.seen.size, "${proxy.seen}")
    }

    @Test fun the_wait_is_validated_and_off_by_default() {
        assertEquals(0, TesseraInterceptor(signer).maxRateLimitWaitMillis)
        assertFailsWith<IllegalArgumentException> { TesseraInterceptor(signer, maxRateLimitWaitMillis = -1) }
    }
}
