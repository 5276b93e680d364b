// A `429 rate_limited` answer, read from the response head (spec §12.5).
package dev.tessera

import okhttp3.Response

/**
 * The server refused a request because its key's budget is spent: `429`,
 * problem code `rate_limited` (spec §12.5).
 *
 * Read from the response head only ([from]), so the problem document stays
 * unread. Retry after [retryAfterSeconds], **signed afresh** (spec §10: a
 * resend carries a new signature; the refused one consumed no nonce, but it is
 * never sent again). [TesseraInterceptor] can wait and retry once by itself, up
 * to a cap (`maxRateLimitWaitMillis`); off by default, so the 429 is returned.
 *
 * ```kotlin
 * client.newCall(request).execute().use { response ->
 *     TesseraRateLimited.from(response)?.let { limited ->
 *         // limited.retryAfterSeconds, limited.policy ("default"), limited.remaining (0)
 *     }
 * }
 * ```
 */
data class TesseraRateLimited(
    /** The delay from `Retry-After` (delta-seconds; null when absent or an HTTP date). */
    val retryAfterSeconds: Long?,
    /** The plan whose budget is spent, from the `RateLimit` field (`"default"`). */
    val policy: String?,
    /** Requests left in that plan's budget, from `RateLimit`'s `r` (0 when refused). */
    val remaining: Long?,
) {
    /** [retryAfterSeconds] as a [java.time.Duration] (Android: API 26+ or desugaring). */
    val retryAfter: java.time.Duration?
        get() = retryAfterSeconds?.let { java.time.Duration.ofSeconds(it) }

    companion object {
        /** The status of a `rate_limited` answer. */
        const val STATUS: Int = 429

        /**
         * Non-null only when [response] is a `429`: its `Retry-After` and the plan
         * and remaining count named by its `RateLimit` field. The body is not read.
         */
        @JvmStatic
        fun from(response: Response): TesseraRateLimited? =
            parse(response.code(), response.header("Retry-After"), response.header("RateLimit"))

        /**
         * As [from], from the status and the raw `Retry-After` and `RateLimit`
         * values (for other HTTP clients). `RateLimit` is
         * `"<plan>";r=<remaining>;t=<seconds>` (draft-ietf-httpapi-ratelimit-headers-10);
         * of several plans, the first one with `r=0` (the spent one) is reported,
         * else the first.
         */
        @JvmStatic
        fun parse(status: Int, retryAfter: String?, rateLimit: String?): TesseraRateLimited? {
            if (status != STATUS) return null
            val seconds = retryAfter?.trim()?.takeIf { DELTA_SECONDS.matches(it) }?.toLongOrNull()
            val items = rateLimit?.let(::parseItems).orEmpty()
            val item = items.firstOrNull { it.second == 0L } ?: items.firstOrNull()
            return TesseraRateLimited(seconds, item?.first, item?.second)
        }

        private val DELTA_SECONDS = Regex("[0-9]{1,18}")

        /** The list members of a `RateLimit` field: (plan name, `r`), tolerant of what it does not know. */
        private fun parseItems(field: String): List<Pair<String?, Long?>> {
            val out = ArrayList<Pair<String?, Long?>>()
            var i = 0
            val n = field.length
            while (i < n) {
                while (i < n && (field[i] == ' ' || field[i] == '\t')) i++
                // The item: an sf-string or a token.
                val name: String
                if (i < n && field[i] == '"') {
                    val b = StringBuilder()
                    i++
                    while (i < n && field[i] != '"') {
                        if (field[i] == '\\' && i + 1 < n) i++
                        b.append(field[i])
                        i++
                    }
                    i++ // the closing quote
                    name = b.toString()
                } else {
                    val start = i
                    while (i < n && field[i] != ';' && field[i] != ',') i++
                    name = field.substring(start, i).trim()
                }
                // Its parameters, up to the next member.
                var remaining: Long? = null
                while (i < n && field[i] != ',') {
                    if (field[i] == ';') {
                        val start = i + 1
                        i = start
                        while (i < n && field[i] != ';' && field[i] != ',') i++
                        val param = field.substring(start, i).trim()
                        if (param.startsWith("r=")) remaining = param.substring(2).trim().toLongOrNull()
                    } else {
                        i++
                    }
                }
                i++ // the comma
                out.add(name.takeIf { it.isNotEmpty() } to remaining)
            }
            return out
        }
    }
}
