// OkHttp integration of the Tessera signer. Written against OkHttp 3.x's Java
// API (`request.body()`, `response.code()`); with OkHttp 4.x use the Kotlin
// properties instead (`request.body`, `response.code`), see README.md.
package dev.tessera

import java.io.IOException
import okhttp3.Interceptor
import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.Response
import okio.Buffer
import okio.BufferedSink
import okio.ForwardingSink
import okio.Okio

/** Name of the response header that carries the authenticated server time. */
const val SERVER_TIME_HEADER: String = "Tessera-Server-Time"

/**
 * The response field naming the code of a verifier's refusal (spec §12.2). Only a
 * verifier's refusal carries it, so a `503` with it was refused before the
 * application saw the request, and [TesseraInterceptor] may retry it.
 */
const val ERROR_HEADER: String = "Tessera-Error"

/**
 * A request body the caller streams (a large file, for example) together with
 * the SHA-256 of its bytes, computed beforehand. [TesseraInterceptor] signs it
 * with [Signer.signWithDigest] instead of buffering it. The digest is trusted as
 * given: a wrong one makes the server answer `digest_mismatch`.
 *
 * If the server answers `clock_skew`, the clock is corrected; the request is
 * sent again (signed afresh) only when [replayable] says the delegate can
 * write the same bytes twice and it is not one-shot. OkHttp 3.13 cannot say
 * whether a body is one-shot, so a stream that can be read once (an
 * `InputStream`) must leave [replayable] false, the default: the `401` is
 * then returned to the caller. The same holds for [TesseraInterceptor.maxRetries].
 */
class TesseraStreamingBody @JvmOverloads constructor(
    private val delegate: RequestBody,
    sha256: ByteArray,
    /** Whether [writeTo] can be called again and writes the same bytes (a file, a byte array); false by default. */
    val replayable: Boolean = false,
) : RequestBody() {
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
 * Thrown (as an [IOException]) when OkHttp itself tries to put a request that
 * [TesseraInterceptor] signed on the wire a second time: its own retry after a
 * connection failure (`retryOnConnectionFailure`), a `503` with
 * `Retry-After: 0`, a `408`, or a followed redirect. Spec §10 forbids sending a
 * signature twice, so [TesseraResendGuard] refuses the copy instead. It is a
 * `ProtocolException`, which OkHttp never retries.
 */
class TesseraResendException(message: String) : java.net.ProtocolException(message)

/**
 * An OkHttp **network** interceptor that lets each attempt signed by
 * [TesseraInterceptor] go on the wire once: a second send of the same signed
 * request (OkHttp's own resends, see [TesseraResendException]) fails with
 * [TesseraResendException] instead. Requests not signed by a
 * [TesseraInterceptor] pass untouched. [TesseraInterceptor.install] (Kotlin:
 * `OkHttpClient.Builder.tessera`) adds it; add it yourself only when you build
 * the client by hand.
 */
class TesseraResendGuard : Interceptor {
    override fun intercept(chain: Interceptor.Chain): Response {
        val attempt = chain.request().tag(SignedAttempt::class.java)
        if (attempt != null && !attempt.sent.compareAndSet(false, true)) {
            throw TesseraResendException(
                "OkHttp tried to resend a signed request (its own retry, a 503 with Retry-After: 0, a 408, " +
                    "a redirect, or an Authenticator's answer to a 401); a signature is never sent twice " +
                    "(spec §10). Build the client with TesseraInterceptor.install / OkHttpClient.Builder.tessera, " +
                    "which turns OkHttp's resends off, and let an Authenticator return null for a response " +
                    "with a Tessera-Server-Time header",
            )
        }
        return chain.proceed(chain.request())
    }
}

/** One signed attempt, attached to the request as a tag: [TesseraResendGuard] lets it out once. */
internal class SignedAttempt {
    val sent = java.util.concurrent.atomic.AtomicBoolean(false)
}

/**
 * Adds [interceptor] to this builder the safe way (see [TesseraInterceptor.install]):
 * as an application interceptor, with [TesseraResendGuard], and with OkHttp's own
 * resends (`retryOnConnectionFailure`, `followRedirects`) turned off.
 *
 * ```kotlin
 * val client = OkHttpClient.Builder().tessera(TesseraInterceptor(signer, maxRetries = 1)).build()
 * ```
 */
fun OkHttpClient.Builder.tessera(interceptor: TesseraInterceptor): OkHttpClient.Builder =
    TesseraInterceptor.install(this, interceptor)

/** `tessera(TesseraInterceptor(signer))`: signs every request, no retries beyond the clock-skew one. */
fun OkHttpClient.Builder.tessera(signer: Signer): OkHttpClient.Builder = tessera(TesseraInterceptor(signer))

/**
 * An OkHttp application interceptor that signs every request with [signer]
 * (tessera-v1: `Content-Digest`, `Signature-Input`, `Signature`).
 *
 * Install it with [install] (Kotlin: `OkHttpClient.Builder().tessera(signer)`),
 * not with `addInterceptor` alone: OkHttp resends requests on its own below
 * application interceptors, with the signature of the first attempt, and a
 * copy whose first attempt reached the verifier is answered `401 replayed`.
 * [install] turns those resends off (`retryOnConnectionFailure(false)`,
 * `followRedirects(false)`) and adds [TesseraResendGuard], which refuses any
 * that remain (OkHttp resends a `503` with `Retry-After: 0` unconditionally).
 * Every request this interceptor sends is signed afresh: a new nonce and
 * `created` for every attempt (spec §10).
 *
 * * The body is buffered (at most [maxBufferedBodyBytes]) to hash it, and sent
 *   from the buffer. One-shot and duplex bodies fail closed with a
 *   [TesseraSigningException]; wrap large bodies in [TesseraStreamingBody] with
 *   their precomputed SHA-256 instead.
 * * On `401` with a `Tessera-Server-Time` challenge (`clock_skew`) it checks
 *   the challenge with [Signer.applySkewChallenge] (the MAC under this key and
 *   the nonce it sent), adopts the server's clock for this and every later
 *   request, and retries once with a fresh signature. A challenge that does not
 *   verify is ignored and the 401 is returned as it is. At most one such retry
 *   per call (spec §13.3), whatever [maxRetries] is.
 * * [maxRetries] (default 0: off) more attempts, each signed afresh, after
 *   [retryBackoffMillis] × the attempt number:
 *   - after a `503` whose `Tessera-Error` field and problem `code` are both
 *     `store_unavailable` or `store_reset`, for every method: only a verifier's
 *     refusal carries that field (spec §12.2; `tessera gateway` removes it
 *     from the application's answers), so the application never saw the
 *     request. A `503` without it, whatever its body says, is returned: the
 *     application may have acted on the request (after `store_reset` the retry waits at least
 *     until the whole second its `Retry-After` names, at most 10 s ahead,
 *     or else the next one: the reset store vouches for signatures from its
 *     memory point on, spec §14.1);
 *   - after a connection failure (an `IOException` from OkHttp, including a
 *     [TesseraResendException]), for the idempotent methods only (`GET`,
 *     `HEAD`, `PUT`, `DELETE`, `OPTIONS`, `TRACE`, spelled so): the first
 *     attempt may have been executed with its answer lost, and only an
 *     idempotent request may run twice.
 *   Requests whose body cannot be written twice (a one-shot
 *   [TesseraStreamingBody]) are never retried. The default is 0 so that the
 *   interceptor never sends more than the caller asked for: an application
 *   that already retries does not get its attempts multiplied, and a verifier
 *   whose nonce store is failing is not sent extra load. Set 1 to replace
 *   OkHttp's silent retry (which resent the same signature) with a re-signed one.
 * * `429 rate_limited` (spec §12.5) is returned as it is by default: read it
 *   with [TesseraRateLimited.from]. With [maxRateLimitWaitMillis] > 0, a `429`
 *   whose `Retry-After` is at most that long is closed, waited out, and the
 *   request sent once more, signed afresh, for every method (the verifier
 *   refused it before the application saw it). A longer `Retry-After`, none,
 *   a second `429` or a body that cannot be written twice returns the `429`.
 *   This wait is separate from [maxRetries] and the clock-skew retry: at most
 *   one per call.
 * * `Content-Type` and `Content-Length` are signed as OkHttp will send them
 *   (from the body), so they can be covered.
 * * The method is signed exactly as the request carries it (`get` stays
 *   `get`), and the URL's path and query as OkHttp sends them.
 *
 * An application interceptor, not a network one: the clock-skew retry and
 * [maxRetries] call `proceed` more than once, which OkHttp allows only in
 * application interceptors; as a network interceptor it refuses to sign
 * ([TesseraSigningException]). Redirects are not followed by an [install]ed
 * client: follow them yourself through the client, so each hop is signed.
 */
class TesseraInterceptor @JvmOverloads constructor(
    private val signer: Signer,
    private val maxBufferedBodyBytes: Long = DEFAULT_MAX_BUFFERED_BODY_BYTES,
    /** Extra attempts after `503 store_unavailable`/`store_reset` or a connection failure; 0 (default) is none. */
    val maxRetries: Int = 0,
    /** Pause before retry n: `retryBackoffMillis * n` (default 100 ms). */
    val retryBackoffMillis: Long = DEFAULT_RETRY_BACKOFF_MILLIS,
    /**
     * On `429 rate_limited` with a `Retry-After` of at most this many
     * milliseconds, wait that long and send the request once more, signed
     * afresh; 0 (default) returns every `429` (see [TesseraRateLimited]).
     */
    val maxRateLimitWaitMillis: Long = 0,
) : Interceptor {

    init {
        require(maxRetries in 0..MAX_RETRIES) { "maxRetries must be 0 to $MAX_RETRIES" }
        require(retryBackoffMillis >= 0) { "retryBackoffMillis must not be negative" }
        require(maxRateLimitWaitMillis >= 0) { "maxRateLimitWaitMillis must not be negative" }
    }

    override fun intercept(chain: Interceptor.Chain): Response {
        val original = chain.request()
        if (chain.connection() != null) {
            throw TesseraSigningException(
                "TesseraInterceptor is a network interceptor here; install it with " +
                    "TesseraInterceptor.install(builder, interceptor) or addInterceptor",
                null,
            )
        }
        val body = try {
            prepare(original.body())
        } catch (e: IOException) {
            throw e
        } catch (e: RuntimeException) {
            // The application's body failed (contentLength, writeTo): an IOException, so
            // that an enqueued call reports it to its callback.
            throw TesseraSigningException("the request body could not be read for signing: $e", "body_failed", e)
        }
        val retriable = body.replayable
        var skewRetried = false
        var rateLimitWaited = false
        var attempt = 0
        while (true) {
            val response: Response? = try {
                val (signed, nonce) = sign(original, body)
                val first = chain.proceed(signed)
                // An authentic challenge corrects the clock either way (spec §13.3); the
                // request is sent again only when its body can be written twice.
                if (!skewRetried && isAuthenticChallenge(first, nonce) && retriable) {
                    skewRetried = true
                    first.close()
                    chain.proceed(sign(original, body).first)
                } else {
                    first
                }
            } catch (e: IOException) {
                if (e is TesseraSigningException || !retriable || attempt >= maxRetries ||
                    original.method() !in IDEMPOTENT || chain.call().isCanceled
                ) {
                    throw e
                }
                null
            }
            var resetSeconds = 0L
            if (response != null) {
                val wait = if (rateLimitWaited || !retriable) null else rateLimitWait(response)
                if (wait != null) {
                    // Refused before the nonce was recorded (spec §12.5); the retry is signed afresh all the same.
                    rateLimitWaited = true
                    response.close()
                    sleepUnlessCanceled(chain, wait, "waiting out a 429 rate_limited")
                    continue
                }
                val code = retryableStoreCode(response)
                if (attempt >= maxRetries || !retriable || code == null) return response
                if (code == "store_reset") resetSeconds = storeResetSeconds(response)
                response.close()
            }
            attempt++
            pause(chain, attempt, resetSeconds)
        }
    }

    /** A `401` with a `Tessera-Server-Time` challenge that verifies for [nonce]; the clock is then adopted. */
    private fun isAuthenticChallenge(response: Response, nonce: String): Boolean {
        if (response.code() != 401) return false
        // Every line, joined as RFC 9651 reads a field (spec §13.3; a server sends one).
        val lines = response.headers(SERVER_TIME_HEADER)
        if (lines.isEmpty()) return false
        val challenge = lines.joinToString(", ")
        return try {
            signer.applySkewChallenge(challenge, nonce)
            true
        } catch (e: TesseraException) {
            false // forged, replayed or for another request: keep the clock, return the 401
        } catch (e: Exception) {
            false // the signer failed (closed, say): keep the clock, return the 401
        }
    }

    /**
     * `store_unavailable` or `store_reset` when [response] is the verifier's `503`
     * refusal with that code, else null: its `Tessera-Error` field names the code,
     * which only a verifier's refusal carries (spec §12.2; a gateway removes it
     * from the application's answers), and its problem body agrees. An
     * application's own `503`, whatever its body says, is not one: it may have
     * acted on the request, so it is never retried. (A `429`, the verifier's or
     * not, means the request was not processed: it is waited out by its status
     * and `Retry-After`, as the Rust client does.)
     */
    private fun retryableStoreCode(response: Response): String? {
        if (response.code() != 503) return null
        val code = response.header(ERROR_HEADER) ?: return null
        if (code != "store_unavailable" && code != "store_reset") return null
        return code.takeIf { tesseraProblemCode(response) == it }
    }

    /**
     * The code of [response]'s problem body: `application/problem+json` whose
     * `type` is `urn:tessera:error:<code>` (spec §12.2), else null.
     */
    private fun tesseraProblemCode(response: Response): String? {
        val type = response.body()?.contentType() ?: return null
        if (!type.type().equals("application", true) || !type.subtype().equals("problem+json", true)) return null
        val text = try {
            response.peekBody(PROBLEM_PEEK_BYTES).string()
        } catch (e: IOException) {
            return null
        }
        return TESSERA_PROBLEM_TYPE.find(text)?.groupValues?.get(1)
    }

    /** The wait before retrying a `429`, in ms, when its `Retry-After` is within [maxRateLimitWaitMillis]; else null. */
    private fun rateLimitWait(response: Response): Long? {
        if (maxRateLimitWaitMillis <= 0) return null
        val seconds = TesseraRateLimited.from(response)?.retryAfterSeconds ?: return null
        // seconds * 1000 <= cap, without overflow for a huge Retry-After.
        return if (seconds <= maxRateLimitWaitMillis / 1000) seconds * 1000 else null
    }

    /** Sleeps [millis] in slices, so that a call canceled meanwhile stops waiting (`IOException("Canceled")`). */
    private fun sleepUnlessCanceled(chain: Interceptor.Chain, millis: Long, what: String) {
        val end = System.nanoTime() + millis * 1_000_000
        while (true) {
            if (chain.call().isCanceled) throw IOException("Canceled")
            val left = (end - System.nanoTime()) / 1_000_000
            if (left <= 0) return
            try {
                Thread.sleep(minOf(left, CANCEL_POLL_MILLIS))
            } catch (e: InterruptedException) {
                Thread.currentThread().interrupt()
                throw java.io.InterruptedIOException("interrupted while $what")
            }
        }
    }

    /** The whole seconds a `store_reset` asks to wait (`Retry-After`, 1 to [MAX_RESET_WAIT_SECONDS]; 1 when absent). */
    private fun storeResetSeconds(response: Response): Long {
        val value = response.header("Retry-After")?.trim() ?: return 1
        if (value.isEmpty() || !value.all { it in '0'..'9' }) return 1
        // Beyond the cap, however many digits, the cap.
        return value.trimStart('0').let { if (it.length > 4) MAX_RESET_WAIT_SECONDS else (it.toLongOrNull() ?: 1) }
            .coerceIn(1, MAX_RESET_WAIT_SECONDS)
    }

    /** Sleeps before retry [attempt]: the backoff, and after `store_reset` until the start of the [resetSeconds]th next second. */
    private fun pause(chain: Interceptor.Chain, attempt: Int, resetSeconds: Long) {
        var millis = retryBackoffMillis * attempt
        if (resetSeconds > 0) {
            // Offsets are whole seconds, so the signer's seconds start with the system's.
            millis = maxOf(millis, (resetSeconds - 1) * 1000 + 1000 - System.currentTimeMillis() % 1000 + 5)
        }
        if (millis == 0L) return
        sleepUnlessCanceled(chain, millis, "waiting to retry")
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
            return PreparedBody(body, null, body.sha256, body.replayable && !flag(inner, "isOneShot"))
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
        // A body of unknown length is refused as soon as a write passes the limit,
        // not once it is all in memory.
        val buffer = Buffer()
        val limited = object : ForwardingSink(buffer) {
            override fun write(source: Buffer, byteCount: Long) {
                if (buffer.size() + byteCount > maxBufferedBodyBytes) throw tooLarge()
                super.write(source, byteCount)
            }
        }
        Okio.buffer(limited).use { sink -> body.writeTo(sink) }
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
            // OkHttp's BridgeInterceptor sets these from the body; sign what it will send:
            // Content-Length always, Content-Type only when the body has a media type
            // (otherwise the caller's Content-Type goes out as it is).
            if (body.body != null && name.equals("Content-Length", true)) continue
            if (body.body?.contentType() != null && name.equals("Content-Type", true)) continue
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
        // Userinfo and the fragment are not signed (spec §8.3, §8.4), and the request
        // goes out with the URL that was signed: through an HTTP proxy OkHttp writes
        // the whole URL on the request line, and a verifier refuses both.
        val url = original.url().let { u ->
            if (u.encodedUsername().isEmpty() && u.encodedPassword().isEmpty() && u.encodedFragment() == null) u
            else u.newBuilder().username("").password("").fragment(null).build()
        }
        if (url != original.url()) builder.url(url)
        val request = HttpRequest(original.method(), url.toString(), lines, body.bytes)
        val signed = try {
            if (body.sha256 != null) signer.signWithDigest(request, body.sha256) else signer.sign(request)
        } catch (e: TesseraException) {
            throw TesseraSigningException("cannot sign ${original.method()} ${original.url().redact()}: ${e.message}", e.code, e)
        } catch (e: IOException) {
            throw e
        } catch (e: Exception) {
            // A closed Signer (IllegalStateException), UniFFI's InternalException, a
            // provider's unchecked exception: an IOException, so that an enqueued
            // call reports it to its callback instead of killing OkHttp's dispatcher
            // thread (only IOExceptions reach onFailure).
            throw TesseraSigningException(
                "cannot sign ${original.method()} ${original.url().redact()}: the signer failed " +
                    "(${e.javaClass.simpleName}${e.message?.let { ": $it" } ?: ""})",
                "signer_failed",
                e,
            )
        }
        for (h in signed.headers) builder.header(h.name, h.value)
        builder.tag(SignedAttempt::class.java, SignedAttempt())
        return builder.build() to signed.nonce
    }

    companion object {
        /** Default largest body buffered for hashing: 8 MiB. */
        const val DEFAULT_MAX_BUFFERED_BODY_BYTES: Long = 8L * 1024 * 1024

        /** Default pause before retry n: n × 100 ms. */
        const val DEFAULT_RETRY_BACKOFF_MILLIS: Long = 100

        /** The largest [maxRetries] accepted. */
        const val MAX_RETRIES: Int = 5

        private const val PROBLEM_PEEK_BYTES: Long = 16 * 1024
        private const val CANCEL_POLL_MILLIS: Long = 50
        /** The longest wait a `store_reset`'s `Retry-After` is followed for (the spec's memory point is at most 5 s ahead: 3 s in memory, 5 s with Redis). */
        private const val MAX_RESET_WAIT_SECONDS: Long = 10
        private val TESSERA_PROBLEM_TYPE = Regex("\"type\"\\s*:\\s*\"urn:tessera:error:([a-z_]+)\"")
        private val IDEMPOTENT = setOf("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE")

        /**
         * Adds [interceptor] to [builder] so that no signature is ever sent twice:
         * as an application interceptor (every attempt it makes is signed afresh),
         * plus [TesseraResendGuard] as a network interceptor, with
         * `retryOnConnectionFailure(false)` (OkHttp's own retry resends the first
         * attempt's signature) and `followRedirects(false)` (a redirected hop would
         * carry a signature for the old URL; follow redirects yourself through the
         * client). Use [maxRetries] for re-signed retries. Returns [builder].
         */
        @JvmStatic
        fun install(builder: OkHttpClient.Builder, interceptor: TesseraInterceptor): OkHttpClient.Builder =
            builder.addInterceptor(interceptor)
                .addNetworkInterceptor(TesseraResendGuard())
                .retryOnConnectionFailure(false)
                .followRedirects(false)

        /** `RequestBody.isOneShot()`/`isDuplex()` exist from OkHttp 3.14; older bodies are neither. */
        /**
         * `isOneShot`/`isDuplex` of [body]: OkHttp 3.14+ declares them on `RequestBody`
         * (public, so an override in a class that is not public, an anonymous or private
         * body, is reached through it); on an older OkHttp, the body's own method of that
         * name if it has one (made accessible), else false. Whatever fails is a
         * [TesseraSigningException], an IOException.
         */
        private fun flag(body: RequestBody, method: String): Boolean {
            val getter = try {
                RequestBody::class.java.getMethod(method)
            } catch (e: NoSuchMethodException) {
                try {
                    body.javaClass.getMethod(method).also { it.isAccessible = true }
                } catch (e: NoSuchMethodException) {
                    return false
                } catch (e: RuntimeException) { // a module that does not open the class
                    throw TesseraSigningException("the request body's $method() cannot be called: $e", "body_failed", e)
                }
            }
            return try {
                getter.invoke(body) as? Boolean ?: false
            } catch (e: java.lang.reflect.InvocationTargetException) {
                val cause = e.cause ?: e
                if (cause is IOException) throw cause
                throw TesseraSigningException("the request body's $method() failed: $cause", "body_failed", cause)
            } catch (e: ReflectiveOperationException) {
                throw TesseraSigningException("the request body's $method() cannot be called: $e", "body_failed", e)
            }
        }
    }
}
