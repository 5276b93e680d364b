// URLSession integration of the Tessera signer.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Signs `URLRequest`s with a `Signer` and recovers from clock skew.
///
/// Only the three Tessera headers are set (`Content-Digest`, `Signature-Input`,
/// `Signature`). URLSession owns `Authorization`, `Host`, `Content-Length`,
/// `Connection` and a few others (it may drop or rewrite them), so do not
/// cover those: cover only headers you set yourself, such as `Content-Type`
/// or an `X-Request-Id`.
///
/// The body must be in `httpBody`; a `httpBodyStream` is refused (sign it with
/// `sign(_:bodySHA256:)` and its precomputed digest instead).
///
/// The method (`httpMethod`) and the URL (`url.absoluteString`) are signed
/// exactly as the request carries them: nothing is uppercased, re-encoded or
/// decoded here.
public final class TesseraURLRequestSigner: @unchecked Sendable {
    /// The name of the response header carrying the authenticated server time.
    public static let serverTimeHeader = "Tessera-Server-Time"

    /// The signer (its clock offset is shared by every request it signs).
    public let signer: Signer

    /// The longest `Retry-After` (seconds) that `data(for:session:)` waits out
    /// on `429 rate_limited` before sending the request once more, signed
    /// afresh; 0 (the default) returns every 429 (read it with
    /// `TesseraRateLimited(response:)`).
    public let maxRateLimitWait: TimeInterval

    /// Wraps `signer`. `maxRateLimitWait` (seconds, default 0: off): see the property.
    public init(signer: Signer, maxRateLimitWait: TimeInterval = 0) {
        precondition(maxRateLimitWait >= 0 && maxRateLimitWait.isFinite, "maxRateLimitWait must be a finite number of seconds >= 0")
        self.signer = signer
        self.maxRateLimitWait = maxRateLimitWait
    }

    /// Signs `request` in place and returns the signing result (keep its
    /// `nonce` for `handleSkewChallenge`).
    ///
    /// Every signature is for one send: before any resend (a retry after a
    /// `503`, a timeout, a dropped connection, a redirect) call `sign` again on
    /// the unsigned request. A copy of a sent signature is answered `replayed`
    /// when the verifier recorded the first attempt, even if the client saw an
    /// error (spec §10).
    @discardableResult
    public func sign(_ request: inout URLRequest) throws -> SignedHeaders {
        if request.httpBodyStream != nil {
            throw TesseraError.InvalidRequest(
                code: "invalid_parameter",
                detail: "httpBodyStream bodies cannot be buffered; use sign(_:bodySHA256:)"
            )
        }
        let signed = try signer.sign(request: try Self.httpRequest(for: request, body: request.httpBody))
        Self.apply(signed, to: &request)
        return signed
    }

    /// Signs `request` (whose body the caller streams) with the SHA-256 of its body.
    @discardableResult
    public func sign(_ request: inout URLRequest, bodySHA256: Data) throws -> SignedHeaders {
        let signed = try signer.signWithDigest(request: try Self.httpRequest(for: request, body: nil), bodySha256: bodySHA256)
        Self.apply(signed, to: &request)
        return signed
    }

    /// If `response` is a `401` with a `Tessera-Server-Time` challenge for the
    /// request signed with `signed`, checks the challenge (its MAC under this key
    /// and the nonce sent), adopts the server clock, and returns `true`: sign the
    /// request again and retry it once. Returns `false` for any other response or
    /// a challenge that does not verify (forged, or for another request).
    public func handleSkewChallenge(_ response: HTTPURLResponse, signed: SignedHeaders) -> Bool {
        guard response.statusCode == 401,
              let challenge = response.value(forHTTPHeaderField: Self.serverTimeHeader)
        else { return false }
        do {
            _ = try signer.applySkewChallenge(headerValue: challenge, sentNonce: signed.nonce)
            return true
        } catch {
            return false
        }
    }

    /// Signs and sends `request` with `session`, retrying once after an
    /// authenticated `clock_skew` answer; the retry is signed afresh from
    /// `request` (new nonce and `created`). With `maxRateLimitWait` > 0, a
    /// `429 rate_limited` whose `Retry-After` is at most that long is waited
    /// out (`Task.sleep`, so cancelling the task stops it) and the request sent
    /// once more, signed afresh, for any method (the verifier refused it before
    /// the application saw it); a longer or missing `Retry-After` or a second
    /// 429 is returned. At most one of each retry per call. Nothing else is
    /// retried here: to retry after an error, call `data(for:)` again with the
    /// original request, never resend a signed one. URLSession follows
    /// redirects with the signed headers unchanged; give it a `session` whose
    /// delegate refuses them (`willPerformHTTPRedirection` completing with
    /// `nil`) and call `data(for:)` for the new URL.
    public func data(for request: URLRequest, session: URLSession = .shared) async throws -> (Data, HTTPURLResponse) {
        var skewRetried = false
        var rateLimitWaited = false
        while true {
            var attempt = request // the unsigned original, signed afresh for every send
            let signed = try sign(&attempt)
            let (data, response) = try await Self.send(attempt, session: session)
            if !skewRetried && handleSkewChallenge(response, signed: signed) {
                skewRetried = true
                continue
            }
            if !rateLimitWaited, let nanoseconds = rateLimitWait(response) {
                rateLimitWaited = true
                try await Task.sleep(nanoseconds: nanoseconds)
                continue
            }
            return (data, response)
        }
    }

    /// The wait before retrying a `429`, in nanoseconds, when its `Retry-After`
    /// is within `maxRateLimitWait`; else nil.
    func rateLimitWait(_ response: HTTPURLResponse) -> UInt64? {
        guard maxRateLimitWait > 0,
              let seconds = TesseraRateLimited(response: response)?.retryAfterSeconds,
              Double(seconds) <= maxRateLimitWait
        else { return nil }
        let (nanoseconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? nil : nanoseconds
    }

    private static func send(_ request: URLRequest, session: URLSession) async throws -> (Data, HTTPURLResponse) {
        try await withCheckedThrowingContinuation { continuation in
            session.dataTask(with: request) { data, response, error in
                if let error = error {
                    continuation.resume(throwing: error)
                } else if let http = response as? HTTPURLResponse {
                    continuation.resume(returning: (data ?? Data(), http))
                } else {
                    continuation.resume(throwing: URLError(.badServerResponse))
                }
            }.resume()
        }
    }

    static func httpRequest(for request: URLRequest, body: Data?) throws -> HttpRequest {
        guard let url = request.url?.absoluteString else {
            throw TesseraError.InvalidRequest(code: "invalid_field_value", detail: "the request has no URL")
        }
        let headers = (request.allHTTPHeaderFields ?? [:])
            .sorted { $0.key.lowercased() < $1.key.lowercased() }
            .map { HttpHeader(name: $0.key, value: $0.value) }
        return HttpRequest(method: request.httpMethod ?? "GET", url: url, headers: headers, body: body)
    }

    static func apply(_ signed: SignedHeaders, to request: inout URLRequest) {
        for header in signed.headers {
            request.setValue(header.value, forHTTPHeaderField: header.name)
        }
    }
}
