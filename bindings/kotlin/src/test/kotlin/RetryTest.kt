import dev.tessera.*
import java.io.IOException
import java.util.concurrent.TimeUnit
import kotlin.test.*
import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.Response
import org.junit.After
import org.junit.Assume.assumeTrue
import org.junit.Before

/**
 * Resends against the real verifier (`tessera serve`, started by
 * bindings/run.sh) through [FaultProxy], which drops connections and answers
 * `503 store_unavailable` after the verifier has recorded the nonce (spec §10:
 * that can happen). The proxy records every `Signature` that reaches it.
 *
 * A client built with `OkHttpClient.Builder.tessera(...)` never sends the same
 * signature twice; one built the old way (`addInterceptor` on OkHttp's
 * defaults) does, and the copy is answered `401 replayed`: those tests pin
 * that behaviour down, as the README describes it.
 */
class RetryTest {
    private val base: String? = System.getProperty("tessera.server.url")
    private lateinit var signer: Signer
    private lateinit var proxy: FaultProxy
    private val json = MediaType.parse("application/json")

    @Before fun setUp() {
        assumeTrue("no tessera server configured (tessera.server.url)", base != null)
        signer = Signer(System.getProperty("tessera.key.id"), hex(System.getProperty("tessera.key.secret_hex")))
        proxy = FaultProxy(base!!)
    }

    @After fun tearDown() {
        if (base == null) return
        proxy.close()
        signer.close()
    }

    private fun OkHttpClient.Builder.viaProxy(): OkHttpClient =
        proxy(proxy.proxy).readTimeout(10, TimeUnit.SECONDS).connectTimeout(5, TimeUnit.SECONDS).build()

    /** The client the README used to show, on OkHttp's defaults (retryOnConnectionFailure on). */
    private fun oldWay(): OkHttpClient = OkHttpClient.Builder().addInterceptor(TesseraInterceptor(signer)).viaProxy()

    private fun helper(maxRetries: Int): OkHttpClient =
        OkHttpClient.Builder().tessera(TesseraInterceptor(signer, maxRetries = maxRetries, retryBackoffMillis = 10)).viaProxy()

    private fun get(c: OkHttpClient, path: String): Response = c.newCall(Request.Builder().url("$base$path").build()).execute()

    private fun code(r: Response): String? =
        r.use { Regex("\"code\"\\s*:\\s*\"([a-z_]+)\"").find(it.body()!!.string())?.groupValues?.get(1) }

    /** A first request that succeeds, so that the client has a pooled, proven connection (where OkHttp retries). */
    private fun warmUp(c: OkHttpClient) {
        get(c, "/v1/warm-up").use { assertEquals(200, it.code()) }
    }

    private fun assertNoSignatureSentTwice() {
        val signatures = proxy.seen.map { assertNotNull(it.signature, "every request is signed") }
        assertEquals(signatures.size, signatures.toSet().size, "a signature went out twice: ${proxy.seen}")
        val inputs = proxy.seen.map { it.signatureInput }
        assertEquals(inputs.size, inputs.toSet().size, "a nonce/created pair went out twice: ${proxy.seen}")
    }

    private fun statuses() = proxy.seen.map { it.upstreamStatus }

    // ---- OkHttp defaults, interceptor added the old way: the problem ---------------

    @Test fun oldWayResendsTheSameSignatureAfterADroppedConnection() {
        val c = oldWay()
        warmUp(c)
        proxy.script(FaultProxy.Action.FORWARD_THEN_DROP)
        val r = get(c, "/v1/dropped")
        // OkHttp's retryOnConnectionFailure resent the first attempt byte for byte,
        // below the interceptor: the verifier had recorded its nonce.
        assertEquals(401, r.code())
        assertEquals("replayed", code(r))
        assertEquals(3, proxy.seen.size, "${proxy.seen}")
        assertEquals(proxy.seen[1].signature, proxy.seen[2].signature, "the silent retry carries the same signature")
        assertEquals(listOf(200, 200, 401), statuses())
    }

    @Test fun oldWayWithRetryOnConnectionFailureOffStillResendsA503WithRetryAfter0() {
        // What the README used to advise: not enough, OkHttp resends a 503 with Retry-After: 0 on its own.
        val c = OkHttpClient.Builder().addInterceptor(TesseraInterceptor(signer))
            .retryOnConnectionFailure(false).followRedirects(false).viaProxy()
        proxy.script(FaultProxy.Action.STORE_UNAVAILABLE_RETRY_AFTER_0)
        val r = get(c, "/v1/retry-after")
        assertEquals(401, r.code())
        assertEquals("replayed", code(r))
        assertEquals(2, proxy.seen.size, "${proxy.seen}")
        assertEquals(proxy.seen[0].signature, proxy.seen[1].signature)
    }

    // ---- the builder helper: every attempt signed afresh ----------------------------

    @Test fun helperRetriesADroppedConnectionSignedAfresh() {
        val c = helper(maxRetries = 1)
        warmUp(c)
        proxy.script(FaultProxy.Action.FORWARD_THEN_DROP)
        get(c, "/v1/dropped").use { r -> assertEquals(200, r.code(), "the re-signed retry is accepted") }
        assertEquals(3, proxy.seen.size, "warm-up, dropped attempt, retry: ${proxy.seen}")
        assertEquals(listOf(200, 200, 200), statuses(), "the dropped attempt was accepted too (its answer was lost)")
        assertNoSignatureSentTwice()
    }

    @Test fun helperWithoutRetriesReportsTheFailureAndResendsNothing() {
        val c = helper(maxRetries = 0)
        warmUp(c)
        proxy.script(FaultProxy.Action.FORWARD_THEN_DROP)
        assertFailsWith<IOException> { get(c, "/v1/dropped").close() }
        assertEquals(2, proxy.seen.size, "no resend of any kind: ${proxy.seen}")
        assertNoSignatureSentTwice()
    }

    @Test fun helperDoesNotRetryAPostAfterADroppedConnection() {
        // The POST may have been executed (here it was): only idempotent methods are retried.
        val c = helper(maxRetries = 1)
        warmUp(c)
        proxy.script(FaultProxy.Action.FORWARD_THEN_DROP)
        assertFailsWith<IOException> {
            c.newCall(Request.Builder().url("$base/v1/orders").post(RequestBody.create(json, "{}")).build()).execute().close()
        }
        assertEquals(2, proxy.seen.size, "${proxy.seen}")
        assertNoSignatureSentTwice()
    }

    @Test fun helperRetriesStoreUnavailableSignedAfreshForAnyMethod() {
        val c = helper(maxRetries = 1)
        proxy.script(FaultProxy.Action.STORE_UNAVAILABLE)
        val r = c.newCall(Request.Builder().url("$base/v1/orders").post(RequestBody.create(json, "{\"qty\":1}")).build()).execute()
        r.use { assertEquals(200, it.code()) }
        assertEquals(listOf("POST", "POST"), proxy.seen.map { it.method })
        assertNoSignatureSentTwice()
    }

    @Test fun helperDoesNotRetryAnApplicationsOwn503() {
        // A 503 from the application (behind a gateway) may come after it acted on the
        // POST, whatever its body says: a plain one, or a verifier's refusal of a service
        // it called, passed on. Only a verifier's own refusal carries Tessera-Error.
        for (action in listOf(FaultProxy.Action.APPLICATION_503, FaultProxy.Action.APPLICATION_PROBLEM_503)) {
            proxy.seen.clear()
            val c = helper(maxRetries = 2)
            proxy.script(action)
            val r = c.newCall(Request.Builder().url("$base/v1/orders").post(RequestBody.create(json, "{\"qty\":1}")).build()).execute()
            r.use { assertEquals(503, it.code(), "$action") }
            assertEquals(1, proxy.seen.size, "$action: ${proxy.seen}")
        }
    }

    @Test fun theUrlGoesOutAsSignedWithoutUserinfoOrFragment() {
        // Through an HTTP proxy OkHttp writes the whole URL on the request line.
        val c = helper(maxRetries = 0)
        val url = base!!.replace("http://", "http://user:secretpw@") + "/v1/p?x=1#frag"
        c.newCall(Request.Builder().url(url).build()).execute().use { assertEquals(200, it.code()) }
        val target = proxy.seen.single().target
        assertFalse('#' in target || '@' in target || "secretpw" in target, target)
        assertTrue(target.endsWith("/v1/p?x=1"), target)
    }

    @Test fun helperRetriesStoreResetSignedAfreshInALaterSecond() {
        val c = helper(maxRetries = 1)
        proxy.script(FaultProxy.Action.STORE_RESET)
        val r = get(c, "/v1/x")
        r.use { assertEquals(200, it.code()) }
        assertEquals(2, proxy.seen.size)
        assertNoSignatureSentTwice()
        // A store that reset refuses signatures before its memory point (spec §14.1): the retry
        // waits for the second its Retry-After names.
        val created = proxy.seen.map { Regex(";created=(\\d+)").find(it.signatureInput!!)!!.groupValues[1].toLong() }
        assertTrue(created[1] >= created[0] + 3, "retry signed 3 seconds later or more: $created")
    }

    @Test fun helperWithoutRetriesReturnsTheStoreUnavailableAnswer() {
        val c = helper(maxRetries = 0)
        proxy.script(FaultProxy.Action.STORE_UNAVAILABLE)
        val r = get(c, "/v1/x")
        assertEquals(503, r.code())
        assertEquals("store_unavailable", code(r))
        assertEquals(1, proxy.seen.size)
    }

    @Test fun helperRetriesAreBounded() {
        val c = helper(maxRetries = 2)
        proxy.script(
            FaultProxy.Action.STORE_UNAVAILABLE, FaultProxy.Action.STORE_UNAVAILABLE,
            FaultProxy.Action.STORE_UNAVAILABLE, FaultProxy.Action.FORWARD,
        )
        val r = get(c, "/v1/x")
        assertEquals(503, r.code(), "after 1 + 2 attempts the last answer is returned")
        r.close()
        assertEquals(3, proxy.seen.size)
        assertNoSignatureSentTwice()
    }

    @Test fun helperRefusesOkHttpsOwnResendOfA503WithRetryAfter0() {
        helper(maxRetries = 0).let { c ->
            proxy.script(FaultProxy.Action.STORE_UNAVAILABLE_RETRY_AFTER_0)
            assertFailsWith<TesseraResendException> { get(c, "/v1/retry-after").close() }
            assertEquals(1, proxy.seen.size, "the guard kept the copy off the wire: ${proxy.seen}")
        }
        proxy.seen.clear()
        helper(maxRetries = 1).let { c ->
            proxy.script(FaultProxy.Action.STORE_UNAVAILABLE_RETRY_AFTER_0)
            get(c, "/v1/retry-after").use { assertEquals(200, it.code()) }
            assertEquals(2, proxy.seen.size, "${proxy.seen}")
            assertNoSignatureSentTwice()
        }
    }

    @Test fun guardRefusesOkHttpsRetryWhenItIsTurnedBackOn() {
        val c = OkHttpClient.Builder().tessera(signer).retryOnConnectionFailure(true).viaProxy()
        warmUp(c)
        proxy.script(FaultProxy.Action.FORWARD_THEN_DROP)
        assertFailsWith<TesseraResendException> { get(c, "/v1/dropped").close() }
        assertEquals(2, proxy.seen.size, "${proxy.seen}")
        assertNoSignatureSentTwice()
    }

    @Test fun helperConfiguresTheBuilder() {
        val c = OkHttpClient.Builder().tessera(signer).build()
        assertFalse(c.retryOnConnectionFailure())
        assertFalse(c.followRedirects())
        assertTrue(c.interceptors().single() is TesseraInterceptor)
        assertTrue(c.networkInterceptors().single() is TesseraResendGuard)
        // Java callers: TesseraInterceptor.install(builder, interceptor).
        val j = TesseraInterceptor.install(OkHttpClient.Builder(), TesseraInterceptor(signer)).build()
        assertFalse(j.retryOnConnectionFailure())
        assertFailsWith<IllegalArgumentException> { TesseraInterceptor(signer, maxRetries = -1) }
        assertFailsWith<IllegalArgumentException> { TesseraInterceptor(signer, maxRetries = TesseraInterceptor.MAX_RETRIES + 1) }
    }

    @Test fun asANetworkInterceptorItRefusesToSign() {
        val c = OkHttpClient.Builder().addNetworkInterceptor(TesseraInterceptor(signer)).viaProxy()
        assertFailsWith<TesseraSigningException> { get(c, "/v1/x").close() }
        assertEquals(0, proxy.seen.size)
    }
}
