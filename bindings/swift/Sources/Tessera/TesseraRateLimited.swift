// A `429 rate_limited` answer, read from the response head (spec §12.5).
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The server refused a request because its key's budget is spent: `429`,
/// problem code `rate_limited` (spec §12.5).
///
/// Read from the response head only, so the problem document stays unread.
/// Retry after `retryAfterSeconds`, **signed afresh** (spec §10: a resend
/// carries a new signature). `TesseraURLRequestSigner.data(for:session:)` can
/// wait and retry once by itself, up to a cap (`maxRateLimitWait`); off by
/// default, so the 429 is returned.
///
/// ```swift
/// let (data, response) = try await tessera.data(for: request)
/// if let limited = TesseraRateLimited(response: response) {
///     // limited.retryAfterSeconds, limited.policy ("default"), limited.remaining (0)
/// }
/// ```
public struct TesseraRateLimited: Equatable, Sendable {
    /// The status of a `rate_limited` answer.
    public static let status = 429

    /// The delay from `Retry-After` (delta-seconds; nil when absent or an HTTP date).
    public let retryAfterSeconds: UInt64?
    /// The plan whose budget is spent, from the `RateLimit` field (`"default"`).
    public let policy: String?
    /// Requests left in that plan's budget, from `RateLimit`'s `r` (0 when refused).
    public let remaining: UInt64?

    /// `retryAfterSeconds` as a `TimeInterval`.
    public var retryAfter: TimeInterval? {
        retryAfterSeconds.map { TimeInterval($0) }
    }

    /// Builds the value as given (tests, other clients).
    public init(retryAfterSeconds: UInt64?, policy: String?, remaining: UInt64?) {
        self.retryAfterSeconds = retryAfterSeconds
        self.policy = policy
        self.remaining = remaining
    }

    /// Non-nil only when `response` is a `429`: its `Retry-After` and the plan
    /// and remaining count named by its `RateLimit` field.
    public init?(response: HTTPURLResponse) {
        self.init(
            status: response.statusCode,
            retryAfter: response.value(forHTTPHeaderField: "Retry-After"),
            rateLimit: response.value(forHTTPHeaderField: "RateLimit")
        )
    }

    /// As `init?(response:)`, from the status and the raw `Retry-After` and
    /// `RateLimit` values. `RateLimit` is `"<plan>";r=<remaining>;t=<seconds>`
    /// (draft-ietf-httpapi-ratelimit-headers-10); of several plans, the first
    /// one with `r=0` (the spent one) is reported, else the first.
    public init?(status: Int, retryAfter: String?, rateLimit: String?) {
        guard status == Self.status else { return nil }
        var seconds: UInt64?
        if let value = retryAfter?.trimmingCharacters(in: .whitespaces),
           !value.isEmpty, value.count <= 18, value.allSatisfy({ $0 >= "0" && $0 <= "9" })
        {
            seconds = UInt64(value)
        }
        let items = rateLimit.map(Self.items(of:)) ?? []
        let item = items.first(where: { $0.remaining == 0 }) ?? items.first
        self.init(retryAfterSeconds: seconds, policy: item?.name, remaining: item?.remaining)
    }

    /// The list members of a `RateLimit` field: (plan name, `r`), tolerant of what it does not know.
    static func items(of field: String) -> [(name: String?, remaining: UInt64?)] {
        let chars = Array(field)
        var out: [(name: String?, remaining: UInt64?)] = []
        var i = 0
        while i < chars.count {
            while i < chars.count && (chars[i] == " " || chars[i] == "\t") {
                i += 1
            }
            // The item: an sf-string or a token.
            var name = ""
            if i < chars.count && chars[i] == "\"" {
                i += 1
                while i < chars.count && chars[i] != "\"" {
                    if chars[i] == "\\" && i + 1 < chars.count {
                        i += 1
                    }
                    name.append(chars[i])
                    i += 1
                }
                i += 1 // the closing quote
            } else {
                let start = i
                while i < chars.count && chars[i] != ";" && chars[i] != "," {
                    i += 1
                }
                name = String(chars[start..<i]).trimmingCharacters(in: .whitespaces)
            }
            // Its parameters, up to the next member.
            var remaining: UInt64?
            while i < chars.count && chars[i] != "," {
                if chars[i] == ";" {
                    let start = i + 1
                    i = start
                    while i < chars.count && chars[i] != ";" && chars[i] != "," {
                        i += 1
                    }
                    let param = String(chars[start..<i]).trimmingCharacters(in: .whitespaces)
                    if param.hasPrefix("r=") {
                        remaining = UInt64(param.dropFirst(2).trimmingCharacters(in: .whitespaces))
                    }
                } else {
                    i += 1
                }
            }
            i += 1 // the comma
            out.append((name: name.isEmpty ? nil : name, remaining: remaining))
        }
        return out
    }
}
