import dev.tessera.*
import kotlin.test.*

/** The FFI API from Kotlin: signing, errors with codes, clock offset. */
class SignerTest {
    private val secret = hex("0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186")

    private fun get(url: String, vararg headers: Pair<String, String>) =
        HttpRequest("GET", url, headers.map { HttpHeader(it.first, it.second) }, null)

    @Test fun signAtReproducesTheBasicVector() {
        Signer("device-7f3a2c", secret).use { s ->
            val req = get("https://api.example.com/v1/orders?limit=10", "Accept" to "application/json")
            val signed = s.signAt(req, 1_700_000_000L, "sWdxpjKCug4loESa7u_Yzg", null)
            assertEquals(listOf("content-digest", "signature-input", "signature"), signed.headers.map { it.name })
            assertEquals("tessera=:egSwrhVo92N7oJhkbfRWjM7ZdfnfSQl4/SXI217/40g=:", signed.headers[2].value)
            assertEquals(1_700_000_000L, signed.created)
            assertTrue(s.signatureBase(req, signed).startsWith("\"@method\": GET\n\"@authority\": api.example.com\n"))
        }
    }

    @Test fun signUsesFreshNoncesAndCoversExtraHeaders() {
        Signer("device-7f3a2c", secret, listOf("content-type"), 60u).use { s ->
            assertEquals(listOf("content-type"), s.coveredHeaders())
            assertEquals("device-7f3a2c", s.keyId())
            val req = HttpRequest("POST", "https://api.example.com/v1/orders",
                listOf(HttpHeader("Content-Type", "application/json")), "{\"qty\":1}".toByteArray())
            val a = s.sign(req)
            val b = s.sign(req)
            assertNotEquals(a.nonce, b.nonce)
            assertEquals(22, a.nonce.length)
            assertTrue(Math.abs(a.created - System.currentTimeMillis() / 1000) <= 2)
            assertEquals(a.created + 60, a.expires)
            assertTrue(a.headers[1].value.contains("\"content-digest\" \"content-type\");created="))
            // The precomputed-digest variant gives the same Content-Digest.
            val sha = java.security.MessageDigest.getInstance("SHA-256").digest("{\"qty\":1}".toByteArray())
            val c = s.signWithDigest(req.copy(body = null), sha)
            assertEquals(a.headers[0], c.headers[0])
            assertEquals(contentDigest("{\"qty\":1}".toByteArray()), c.headers[0].value)
        }
    }

    @Test fun configurationErrorsCarryCodes() {
        fun codeOf(block: () -> Unit): String = assertFailsWith<TesseraException> { block() }.code
        assertEquals("invalid_parameter", codeOf { Signer("has space", secret) })
        assertEquals("invalid_parameter", codeOf { Signer("k", ByteArray(15)) })
        assertEquals("forbidden_component", codeOf { Signer("k", secret, listOf("host")) })
        assertEquals("duplicate_component", codeOf { Signer("k", secret, listOf("content-digest")) })
        val e = assertFailsWith<TesseraException.InvalidConfig> { Signer("k", ByteArray(3)) }
        assertEquals("invalid_parameter", e.code)
        assertTrue(e.message.contains("invalid_parameter"))
    }

    @Test fun coveredHeadersAreCoveredWhenPresentUnlessRequired() {
        Signer("k1", secret, listOf("content-type")).use { s ->
            val bare = s.sign(get("https://api.example.com/v1/me"))
            val input = bare.headers.first { it.name.equals("signature-input", ignoreCase = true) }.value
            assertFalse(input.contains("content-type"), input)
            val typed = s.sign(get("https://api.example.com/v1/me", "Content-Type" to "application/json"))
            val typedInput = typed.headers.first { it.name.equals("signature-input", ignoreCase = true) }.value
            assertTrue(typedInput.contains("\"content-digest\" \"content-type\")"), typedInput)
        }
    }

    @Test fun requestErrorsCarryCodes() {
        Signer("k1", secret, listOf("content-type"), coveredHeadersRequired = true).use { s ->
            val missing = assertFailsWith<TesseraException.InvalidRequest> { s.sign(get("https://api.example.com/")) }
            assertEquals("missing_component", missing.code)
            assertEquals("missing_component", (missing as TesseraException).code)
            assertTrue(missing.detail.contains("content-type"))
            assertEquals("invalid_field_value",
                assertFailsWith<TesseraException> { s.sign(get("https://api.example.com/", "content-type" to "a\nb")) }.code)
            assertEquals("invalid_field_value",
                assertFailsWith<TesseraException> { s.sign(get("/relative", "content-type" to "x")) }.code)
            assertEquals("invalid_parameter",
                assertFailsWith<TesseraException> { s.signWithDigest(get("https://a.example/", "content-type" to "x"), ByteArray(5)) }.code)
        }
    }

    @Test fun clockOffsetAndForgedChallenges() {
        Signer("k1", secret).use { s ->
            assertEquals(0L, s.clockOffset())
            val sent = s.sign(get("https://api.example.com/"))
            val forged = "time=1, keyid=\"k1\", nonce=\"${sent.nonce}\", mac=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
            val e = assertFailsWith<TesseraException.InvalidChallenge> { s.applySkewChallenge(forged, sent.nonce) }
            assertEquals("bad_signature", e.code)
            assertEquals("malformed_signature",
                assertFailsWith<TesseraException> { s.applySkewChallenge(forged, "B".repeat(22)) }.code)
            assertEquals(0L, s.clockOffset())
            s.setClockOffset(120)
            assertEquals(120L, s.clockOffset())
            assertTrue(Math.abs(s.sign(get("https://api.example.com/")).created - (System.currentTimeMillis() / 1000 + 120)) <= 2)
            assertTrue(Math.abs(s.now() - (System.currentTimeMillis() / 1000 + 120)) <= 2)
        }
    }

    @Test fun uppercaseCoveredNamesAreRefusedNotLowercased() {
        for ((names, bad, lower) in listOf(
            Triple(listOf("Content-Type"), "Content-Type", "content-type"),
            Triple(listOf("x-request-id", "X-Request-ID"), "X-Request-ID", "x-request-id"),
        )) {
            val e = assertFailsWith<TesseraException.InvalidConfig> { Signer("k1", secret, names) }
            assertEquals("malformed_signature", e.code)
            assertTrue(e.detail.contains("\"$bad\"") && e.detail.contains("use \"$lower\""), e.detail)
        }
        // Lowercase names are fine, whatever the case of the header lines.
        Signer("k1", secret, listOf("content-type")).use { s ->
            assertEquals(listOf("content-type"), s.coveredHeaders())
            s.sign(get("https://api.example.com/", "CONTENT-TYPE" to "text/plain"))
        }
    }

    @Test fun methodsAreSignedExactlyAsGiven() {
        Signer("device-7f3a2c", secret).use { s ->
            for (method in listOf("get", "PaTcH", "GET")) {
                val req = get("https://api.example.com/v1/orders?limit=10").copy(method = method)
                val signed = s.signAt(req, 1_700_000_000L, "sWdxpjKCug4loESa7u_Yzg", null)
                assertTrue(s.signatureBase(req, signed).startsWith("\"@method\": $method\n"), method)
            }
            val lower = s.signAt(get("https://a.example/").copy(method = "get"), 1_700_000_000L, "sWdxpjKCug4loESa7u_Yzg", null)
            val upper = s.signAt(get("https://a.example/"), 1_700_000_000L, "sWdxpjKCug4loESa7u_Yzg", null)
            assertNotEquals(upper.headers[2].value, lower.headers[2].value)
        }
    }

    @Test fun urlsAreSignedVerbatim() {
        Signer("device-7f3a2c", secret).use { s ->
            fun base(url: String) = s.signatureBase(get(url), s.signAt(get(url), 1_700_000_000L, "sWdxpjKCug4loESa7u_Yzg", null))
            val odd = base("https://api.example.com/a/\"q\"/<b>/c\\d/^/`e`/{f}/g|h?x=\"1\"&y=<2>&z=`^{}|")
            assertTrue(odd.contains("\"@path\": /a/\"q\"/<b>/c\\d/^/`e`/{f}/g|h\n\"@query\": ?x=\"1\"&y=<2>&z=`^{}|\n"), odd)
            assertTrue(base("https://api.ex%61mple.com/v1/x").contains("\"@authority\": api.ex%61mple.com\n"))
            for (url in listOf("https://api.example.com/café", "https://api.example.com/x?q=ÿ", "https://api.example.com/a b")) {
                val e = assertFailsWith<TesseraException.InvalidRequest>(url) { s.sign(get(url)) }
                assertEquals("invalid_field_value", e.code, url)
            }
        }
    }

    @Test fun closedSignerRefusesCalls() {
        val s = Signer("k1", secret)
        s.close()
        assertFailsWith<IllegalStateException> { s.keyId() }
    }
}
