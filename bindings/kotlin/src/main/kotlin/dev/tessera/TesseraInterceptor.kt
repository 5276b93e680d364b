// OkHttp integration of the Tessera signer. Written against OkHttp 3.x's Java
// API (`request.body()`, `response.code()`); with OkHttp 4.x use the Kotlin
// properties instead (`request.body`, `response.code`), see README.md.
package dev.tessera

import java.io.IOException
import okhttp3.Interceptor
import okhttp3.MediaType
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.Response
import okio.Buffer
import okio.BufferedSink

/** Name of the response header that carries the authenticated server time. */
const val SERVER_TIME_HEADER: String = "Tessera-Server-Time"

/**
 * A request body the caller streams (a large file, for example) together with
 * the SHA-256 of its bytes, computed beforehand. [TesseraInterceptor] signs it
 * with [Signer.signWithDigest] instead of buffering it. The digest is trusted as
 * given: a wrong one makes the server answer `digest_mismatch`.
 *
 * If the server answers `clock_skew`, the request is retried only when the
 * delegate can be written twice (it is not one-shot).
 */
class TesseraStreamingBody(private val delegate: RequestBody, sha256: ByteArray) : RequestBody() {
    init {
        require(sha256.size == 32) { "sha256 must be the 32 raw digest bytes" }
    }

    /** The 32 raw SHA-256 bytes of the body (a copy). */
    val sha256: ByteArray = sha256.copyOf()

    internal val delegateBody: RequestBody get() = delegate

    override fun contentType(): MediaType? = delegate.contentType()

    override fun contentLength(): Long = delegate.contentLength()

    override fun writeTo(sink: BufferedSink) = delegate.writeTo(sink)
}

/**
 * Thrown (as an [IOException], so OkHttp reports it through `execute()` and
 * `Callback.onFailure`) when a request cannot be signed. The request is never
 * sent unsigned.
 */
class TesseraSigningException(message: String, val code: String?, cause: Throwable? = null) :
    IOException(message, cause)

/**
 * An OkHttp application interceptor that signs every request with [signer]
 * (tessera-v1: `Content-Digest`, `Signature-Input`, `Signature`).
 *
 * * The body is buffered (at most [maxBufferedBodyBytes]) to hash it, and sent
 *   from the buffer. One-shot and duplex bodies fail closed with a
 *   [TesseraSigningException]; wrap large bodies in [TesseraStreamingBody] with
 *   their precomputed SHA-256 instead.
 * * On `401` with a `Tessera-Server-Time` challenge (`clock_skew`) it checks
 *   the challenge with [Signer.applySkewChallenge] (the MAC under this key and
 *   the nonce it sent), adopts the server's clock for this and every later
 *   request, and retries once with a fresh signature. A challenge that does not
 *   verify is ignored and the 401 is returned as it is.
 * * `Content-Type` and `Content-Length` are signed as OkHttp will send them
 *   (from the body), so they can be covered.
 * * The method is signed exactly as the request carries it (`get` stays
 *   `get`), and the URL's path and query as OkHttp sends them.
 *
 * Add it with `addInterceptor` (not `addNetworkInterceptor`: the skew retry
 * calls `proceed` twice). OkHttp follows redirects below application
 * interceptors without calling them again, so a redirected hop would carry a
 * signature for the old URL: build the client with `followRedirects(false)`
 * and follow redirects yourself through the client (each hop is then signed).
 *
 * OkHttp also retries a request on its own after some connection failures
 * (`retryOnConnectionFailure`, on by default), below this interceptor and with
 * the same signature. If the first attempt reached the server, the copy is
 * answered `replayed`; spec §10 requires a fresh signature for every resend.
 * Build the client with `retryOnConnectionFailure(false)` and retry in your
 * own code through the client, so each attempt is signed afresh.
 */
class TesseraInterceptor @JvmOverloads constructor(
    private val signer: Signer,
    private val maxBufferedBodyBytes: Long = DEFAULT_MAX_BUFFERED_BODY_BYTES,
) : Interceptor {

    override fun intercept(chain: Interceptor.Chain): Response {
        val original = chain.request()
        val body = prepare(original.body())
        val (first, nonce) = sign(original, body)
        val response = chain.proceed(first)
        if (response.code() != 401 || !body.replayable) return response
        val challenge = response.header(SERVER_TIME_HEADER) ?: return response
        try {
            signer.applySkewChallenge(challenge, nonce)
        } catch (e: TesseraException) {
            // Forged, replayed or for another request: keep the clock, return the 401.
            return response
        }
        response.close()
        val (retry, _) = sign(original, body)
        return chain.proceed(retry)
    }

    private class PreparedBody(
        val body: RequestBody?,
        val bytes: ByteArray?,
        val sha256: ByteArray?,
        val replayable: Boolean,
    )

    private fun prepare(body: RequestBody?): PreparedBody {
        if (body == null) return PreparedBody(null, null, null, true)
        if (body is TesseraStreamingBody) {
            val inner = body.delegateBody
            if (flag(inner, "isDuplex")) throw TesseraSigningException("duplex request bodies cannot be signed", null)
            return PreparedBody(body, null, body.sha256, !flag(inner, "isOneShot"))
        }
        if (flag(body, "isDuplex") || flag(body, "isOneShot")) {
            throw TesseraSigningException(
                "one-shot or duplex request bodies cannot be buffered for signing; " +
                    "wrap the body in TesseraStreamingBody with its SHA-256",
                null,
            )
        }
        val length = body.contentLength()
        if (length > maxBufferedBodyBytes) throw tooLarge()
        val buffer = Buffer()
        body.writeTo(buffer)
        if (buffer.size() > maxBufferedBodyBytes) throw tooLarge()
        val bytes = buffer.readByteArray()
        return PreparedBody(RequestBody.create(body.contentType(), bytes), bytes, null, true)
    }

    private fun tooLarge() = TesseraSigningException(
        "the request body exceeds $maxBufferedBodyBytes bytes; " +
            "wrap it in TesseraStreamingBody with its SHA-256",
        null,
    )

    private fun sign(original: Request, body: PreparedBody): Pair<Request, String> {
        val lines = ArrayList<HttpHeader>(original.headers().size() + 2)
        val headers = original.headers()
        for (i in 0 until headers.size()) {
            val name = headers.name(i)
            // OkHttp's BridgeInterceptor sets these from the body; sign what it will send.
            if (body.body != null && (name.equals("Content-Type", true) || name.equals("Content-Length", true))) continue
            lines.add(HttpHeader(name, headers.value(i)))
        }
        val builder = original.newBuilder()
        body.body?.let { b ->
            b.contentType()?.let { lines.add(HttpHeader("Content-Type", it.toString())) }
            val length = b.contentLength()
            if (length >= 0) lines.add(HttpHeader("Content-Length", length.toString()))
            builder.method(original.method(), b)
        }
        // The method and URL exactly as OkHttp sends them: the method as given (never
        // uppercased), the canonical URL whose path and query are the request line's.
        // Userinfo never goes on the wire (OkHttp's Host has none), so it is not signed.
        val url = original.url().let { u ->
            if (u.encodedUsername().isEmpty() && u.encodedPassword().isEmpty()) u
            else u.newBuilder().username("").password("").build()
        }
        val request = HttpRequest(original.method(), url.toString(), lines, body.bytes)
        val signed = try {
            if (body.sha256 != null) signer.signWithDigest(request, body.sha256) else signer.sign(request)
        } catch (e: TesseraException) {
            throw TesseraSigningException("cannot sign ${original.method()} ${original.url().redact()}: ${e.message}", e.code, e)
        }
        for (h in signed.headers) builder.header(h.name, h.value)
        return builder.build() to signed.nonce
    }

    companion object {
        /** Default largest body buffered for hashing: 8 MiB. */
        const val DEFAULT_MAX_BUFFERED_BODY_BYTES: Long = 8L * 1024 * 1024

        /** `RequestBody.isOneShot()`/`isDuplex()` exist from OkHttp 3.14; older bodies are neither. */
        private fun flag(body: RequestBody, method: String): Boolean = try {
            body.javaClass.getMethod(method).invoke(body) as? Boolean ?: false
        } catch (e: NoSuchMethodException) {
            false
        }
    }
}
