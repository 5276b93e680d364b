import dev.tessera.*
import java.io.IOException
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicLong
import java.util.concurrent.atomic.AtomicReference
import kotlin.test.*
import okhttp3.Call
import okhttp3.Callback
import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.Response
import okio.BufferedSink

/**
 * [TesseraInterceptor] when signing cannot happen: every failure reaches the
 * caller as an [IOException] (an enqueued call's `onFailure`), and nothing is
 * sent. No server is needed: the requests never leave the process.
 */
class InterceptorFailureTest {
    private val secret = hex("0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186")

    /** Nothing listens there; a request that got that far would fail to connect instead. */
    private val nowhere = "http://127.0.0.1:9/v1/orders"

    @Test fun aClosedSignerFailsAnEnqueuedCallThroughItsCallback() {
        // Logout closes the signer while calls are still queued: OkHttp's dispatcher
        // thread hands only IOExceptions to onFailure, anything else kills it.
        val signer = Signer("k1", secret)
        signer.close()
        val client = OkHttpClient.Builder().tessera(TesseraInterceptor(signer)).build()
        val failure = AtomicReference<IOException>()
        val done = CountDownLatch(1)
        client.newCall(Request.Builder().url(nowhere).build()).enqueue(object : Callback {
            override fun onFailure(call: Call, e: IOException) { failure.set(e); done.countDown() }
            override fun onResponse(call: Call, response: Response) { response.close(); done.countDown() }
        })
        assertTrue(done.await(5, TimeUnit.SECONDS), "the callback was called")
        val e = assertIs<TesseraSigningException>(failure.get())
        assertEquals("signer_failed", e.code)
        assertTrue(e.message!!.contains("IllegalStateException"), e.message)
        // And for a synchronous call, the same exception.
        val sync = assertFailsWith<TesseraSigningException> { client.newCall(Request.Builder().url(nowhere).build()).execute() }
        assertEquals("signer_failed", sync.code)
        client.dispatcher().executorService().shutdown()
    }

    @Test fun aOneShotBodyOfAClassThatIsNotPublicIsRefusedAsOneShot() {
        // An anonymous class: its isOneShot() is public but the class is not, so calling it
        // through the class's own method object was an IllegalAccessException.
        val oneShot = object : RequestBody() {
            override fun contentType(): MediaType? = MediaType.parse("text/plain")
            override fun writeTo(sink: BufferedSink) { sink.writeUtf8("once") }
            @Suppress("unused") fun isOneShot(): Boolean = true
        }
        Signer("k1", secret).use { signer ->
            val client = OkHttpClient.Builder().tessera(TesseraInterceptor(signer)).build()
            val e = assertFailsWith<TesseraSigningException> {
                client.newCall(Request.Builder().url(nowhere).post(oneShot).build()).execute()
            }
            assertTrue(e.message!!.contains("one-shot"), e.message)
            client.dispatcher().executorService().shutdown()
        }
    }

    @Test fun aBodyOfUnknownLengthIsRefusedOnceItPassesTheLimit() {
        val pulled = AtomicLong()
        val huge = object : RequestBody() {
            override fun contentType(): MediaType? = MediaType.parse("application/octet-stream")
            override fun contentLength(): Long = -1
            override fun writeTo(sink: BufferedSink) {
                val chunk = ByteArray(8192)
                repeat(64 * 1024 * 1024 / chunk.size) {
                    sink.write(chunk)
                    pulled.addAndGet(chunk.size.toLong())
                }
            }
        }
        Signer("k1", secret).use { signer ->
            val client = OkHttpClient.Builder().tessera(TesseraInterceptor(signer, maxBufferedBodyBytes = 1L shl 20)).build()
            val e = assertFailsWith<TesseraSigningException> {
                client.newCall(Request.Builder().url(nowhere).post(huge).build()).execute()
            }
            assertTrue(e.message!!.contains("exceeds 1048576 bytes"), e.message)
            assertTrue(pulled.get() <= (1L shl 20) + 64 * 1024, "read ${pulled.get()} bytes of a 64 MiB body")
            client.dispatcher().executorService().shutdown()
        }
    }
}
