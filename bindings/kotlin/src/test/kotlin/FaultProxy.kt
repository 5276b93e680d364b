import java.io.BufferedInputStream
import java.io.ByteArrayOutputStream
import java.io.InputStream
import java.io.OutputStream
import java.net.InetSocketAddress
import java.net.Proxy
import java.net.ServerSocket
import java.net.Socket
import java.net.URI
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.CopyOnWriteArrayList

/**
 * A plain-HTTP forward proxy on loopback in front of the real verifier
 * (`tessera serve`) that breaks chosen requests, to see what a client resends.
 * Clients reach it as an HTTP proxy (`OkHttpClient.Builder.proxy(proxy)`), so
 * their URLs, `Host` and signatures stay the verifier's own.
 *
 * Every request that reaches it is recorded in [seen] (with its `Signature`)
 * and handled by the next scripted [Action]; when the script is used up, it
 * forwards. Client connections are kept alive (HTTP/1.1), so OkHttp pools
 * them as it would with a real server.
 */
class FaultProxy(upstreamUrl: String) : AutoCloseable {
    enum class Action {
        /** Forward to the verifier and relay its answer. */
        FORWARD,

        /** Forward (the verifier records the nonce), then close the connection without an answer. */
        FORWARD_THEN_DROP,

        /** Forward (the nonce is recorded), then answer `503` `store_unavailable` instead of the verifier's answer. */
        STORE_UNAVAILABLE,

        /** As [STORE_UNAVAILABLE] with `Retry-After: 0`, which OkHttp resends on its own. */
        STORE_UNAVAILABLE_RETRY_AFTER_0,

        /** Forward, then answer `503` `store_reset` with `Retry-After: 3` (the store restarted in the second the request was signed). */
        STORE_RESET,

        /** Forward, then answer `429` `rate_limited` with `Retry-After: 1` and the RateLimit fields. */
        RATE_LIMITED,

        /**
         * Forward, then answer as an application behind a gateway might: a `503` in
         * `application/json` whose body mentions `"code":"store_unavailable"`. Not a
         * verifier's refusal: the application may have acted on the request.
         */
        APPLICATION_503,

        /**
         * Forward, then answer as an application passing on a verifier's refusal from a
         * service it called: the `503` `store_unavailable` problem body, without the
         * `Tessera-Error` field (a gateway removes it from the application's answers).
         */
        APPLICATION_PROBLEM_503,
    }

    /** One request as it reached the proxy. */
    data class Seen(
        val method: String,
        val path: String,
        val signature: String?,
        val signatureInput: String?,
        val action: Action,
        val upstreamStatus: Int,
        /** The request-target exactly as it arrived (absolute form through the proxy). */
        val target: String,
    )

    val seen = CopyOnWriteArrayList<Seen>()
    private val script = ConcurrentLinkedQueue<Action>()
    private val upstream = URI(upstreamUrl).let { InetSocketAddress(it.host, it.port) }
    private val server = ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())
    private val sockets = CopyOnWriteArrayList<Socket>()

    /** For `OkHttpClient.Builder.proxy`. */
    val proxy = Proxy(Proxy.Type.HTTP, InetSocketAddress(server.inetAddress, server.localPort))

    init {
        Thread({
            while (!server.isClosed) {
                val s = try { server.accept() } catch (e: java.io.IOException) { break }
                sockets.add(s)
                Thread({ serve(s) }, "fault-proxy-conn").apply { isDaemon = true }.start()
            }
        }, "fault-proxy-accept").apply { isDaemon = true }.start()
    }

    /** The actions for the next requests, in order. */
    fun script(vararg actions: Action) { script.addAll(actions) }

    override fun close() {
        server.close()
        for (s in sockets) runCatching { s.close() }
    }

    private fun serve(client: Socket) {
        try {
            serveConnection(client)
        } catch (e: Exception) {
            if (!server.isClosed) System.err.println("fault-proxy: $e")
        } finally {
            runCatching { client.close() }
        }
    }

    private fun serveConnection(client: Socket) {
        run {
            client.soTimeout = 10_000
            val input = BufferedInputStream(client.getInputStream())
            val output = client.getOutputStream()
            while (true) {
                val head = readHead(input) ?: return
                val lines = head.split("\r\n")
                val (method, target, version) = lines[0].split(" ").let { Triple(it[0], it[1], it[2]) }
                val headers = lines.drop(1).filter { it.isNotEmpty() }.map { it.substringBefore(':') to it.substringAfter(':').trim() }
                fun header(name: String) = headers.firstOrNull { it.first.equals(name, true) }?.second
                require(header("Transfer-Encoding") == null) { "chunked requests are not supported here" }
                val body = readExactly(input, header("Content-Length")?.toInt() ?: 0)
                // Absolute form (a proxy request) to origin form for the verifier.
                val uri = URI(target)
                val origin = if (uri.isAbsolute) uri.rawPath + (uri.rawQuery?.let { "?$it" } ?: "") else target
                val action = script.poll() ?: Action.FORWARD
                val answer = forward("$method $origin $version", headers, body)
                val status = answer.head.substringAfter(' ').substringBefore(' ').toInt()
                seen.add(Seen(method, uri.rawPath, header("Signature"), header("Signature-Input"), action, status, target))
                when (action) {
                    Action.FORWARD -> relay(output, answer)
                    Action.FORWARD_THEN_DROP -> return // closes the connection, no answer
                    Action.STORE_UNAVAILABLE -> storeUnavailable(output, null)
                    Action.STORE_UNAVAILABLE_RETRY_AFTER_0 -> storeUnavailable(output, "0")
                    Action.STORE_RESET -> problem503(output, "store_reset", "Replay store was reset after the request was signed", "3")
                    Action.RATE_LIMITED -> rateLimited(output)
                    Action.APPLICATION_503 -> application503(output)
                    Action.APPLICATION_PROBLEM_503 ->
                        problem503(output, "store_unavailable", "Replay protection unavailable", null, verifier = false)
                }
            }
        }
    }

    private class Answer(val head: String, val headers: List<Pair<String, String>>, val body: ByteArray)

    /** Sends the request to the verifier on a new connection (`Connection: close`) and reads its whole answer. */
    private fun forward(requestLine: String, headers: List<Pair<String, String>>, body: ByteArray): Answer {
        Socket().use { up ->
            up.connect(upstream, 5_000)
            up.soTimeout = 10_000
            val out = ByteArrayOutputStream()
            out.write("$requestLine\r\n".toByteArray(Charsets.ISO_8859_1))
            for ((n, v) in headers) {
                if (n.equals("Connection", true) || n.equals("Proxy-Connection", true)) continue
                out.write("$n: $v\r\n".toByteArray(Charsets.ISO_8859_1))
            }
            out.write("Connection: close\r\n\r\n".toByteArray(Charsets.ISO_8859_1))
            out.write(body)
            up.getOutputStream().write(out.toByteArray())
            up.getOutputStream().flush()
            val input = BufferedInputStream(up.getInputStream())
            val head = readHead(input) ?: error("the verifier closed the connection without an answer")
            val all = input.readBytes()
            val lines = head.split("\r\n")
            val respHeaders = lines.drop(1).filter { it.isNotEmpty() }.map { it.substringBefore(':') to it.substringAfter(':').trim() }
            return Answer(lines[0], respHeaders, all)
        }
    }

    private fun relay(out: OutputStream, answer: Answer) {
        val b = StringBuilder(answer.head).append("\r\n")
        var framed = false
        for ((n, v) in answer.headers) {
            if (n.equals("Connection", true)) continue
            if (n.equals("Content-Length", true) || n.equals("Transfer-Encoding", true)) framed = true
            b.append(n).append(": ").append(v).append("\r\n")
        }
        if (!framed) b.append("Content-Length: ").append(answer.body.size).append("\r\n")
        b.append("\r\n")
        out.write(b.toString().toByteArray(Charsets.ISO_8859_1))
        out.write(answer.body)
        out.flush()
    }

    private fun storeUnavailable(out: OutputStream, retryAfter: String?) =
        problem503(out, "store_unavailable", "Replay protection unavailable", retryAfter)

    private fun problem503(out: OutputStream, code: String, title: String, retryAfter: String?, verifier: Boolean = true) {
        val body = ("{\"type\":\"urn:tessera:error:$code\",\"title\":\"$title\"," +
            "\"status\":503,\"code\":\"$code\",\"detail\":\"injected by the test proxy\"}").toByteArray()
        val head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n" +
            (if (verifier) "Tessera-Error: $code\r\n" else "") +
            "Cache-Control: no-store\r\n" + (retryAfter?.let { "Retry-After: $it\r\n" } ?: "") +
            "Content-Length: ${body.size}\r\n\r\n"
        out.write(head.toByteArray(Charsets.ISO_8859_1))
        out.write(body)
        out.flush()
    }

    private fun application503(out: OutputStream) {
        val body = "{\"error\":{\"code\":\"store_unavailable\",\"message\":\"inventory store is down, order queued\"}}"
            .toByteArray()
        val head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n" +
            "Content-Length: ${body.size}\r\n\r\n"
        out.write(head.toByteArray(Charsets.ISO_8859_1))
        out.write(body)
        out.flush()
    }

    private fun rateLimited(out: OutputStream) {
        val body = ("{\"type\":\"urn:tessera:error:rate_limited\",\"title\":\"Too many requests\"," +
            "\"status\":429,\"code\":\"rate_limited\",\"detail\":\"injected by the test proxy\"}").toByteArray()
        val head = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/problem+json\r\n" +
            "Cache-Control: no-store\r\nRetry-After: 1\r\nRateLimit-Policy: \"default\";q=1;w=1\r\n" +
            "RateLimit: \"default\";r=0;t=1\r\nContent-Length: ${body.size}\r\n\r\n"
        out.write(head.toByteArray(Charsets.ISO_8859_1))
        out.write(body)
        out.flush()
    }

    companion object {
        /** The head up to the blank line (without it), or null at end of stream before any byte. */
        fun readHead(input: InputStream): String? {
            val buf = ByteArrayOutputStream()
            var matched = 0
            while (true) {
                val c = try { input.read() } catch (e: java.io.IOException) { -1 }
                if (c < 0) {
                    if (buf.size() == 0) return null
                    error("end of stream inside a message head")
                }
                buf.write(c)
                matched = if ((matched % 2 == 0 && c == '\r'.code) || (matched % 2 == 1 && c == '\n'.code)) matched + 1 else 0
                if (matched == 4) return buf.toString(Charsets.ISO_8859_1).dropLast(4)
            }
        }

        fun readExactly(input: InputStream, n: Int): ByteArray {
            val out = ByteArray(n)
            var off = 0
            while (off < n) {
                val r = input.read(out, off, n - off)
                if (r < 0) error("end of stream inside a body")
                off += r
            }
            return out
        }
    }
}
