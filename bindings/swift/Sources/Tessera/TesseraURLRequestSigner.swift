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

    /// The session `data(for:session:)` and `dataTask(for:session:completion:)`
    /// use unless given another: the default configuration, with
    /// `TesseraRedirectGuard` as its delegate, so a `3xx` is returned to the
    /// caller rather than followed with the signed headers.
    public static let defaultSession = URLSession(
        configuration: .default,
        delegate: TesseraRedirectGuard.shared,
        delegateQueue: nil
    )

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
    /// original request, never resend a signed one. Redirects are not
    /// followed (a followed hop would carry this request's signature): a `3xx`
    /// is returned; call `data(for:)` for its `Location` to sign that request
    /// afresh. The default `session` is `defaultSession`; each task also gets
    /// `TesseraRedirectGuard` as its own delegate where the platform has task
    /// delegates (see `TesseraRedirectGuard` for older systems).
    ///
    /// Honours task cancellation: cancelling the calling task cancels the
    /// request in flight (`withTaskCancellationHandler` around the
    /// `URLSessionDataTask`) or the `429` wait, and throws `CancellationError`;
    /// no further attempt is signed or sent. For apps without async/await,
    /// `dataTask(for:session:completion:)` does the same with a completion handler.
    public func data(for request: URLRequest, session: URLSession = TesseraURLRequestSigner.defaultSession) async throws -> (Data, HTTPURLResponse) {
        var skewRetried = false
        var rateLimitWaited = false
        while true {
            try Task.checkCancellation()
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

    /// Sends `request`; cancelling the calling task cancels the `URLSessionDataTask`
    /// (`withTaskCancellationHandler`) and throws `CancellationError`.
    private static func send(_ request: URLRequest, session: URLSession) async throws -> (Data, HTTPURLResponse) {
        let handle = DataTaskHandle()
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let task = session.dataTask(with: request) { data, response, error in
                        continuation.resume(with: outcome(data, response, error))
                    }
                    // A cancellation that came before the task existed cancels it now.
                    handle.start(task)
                }
            } onCancel: {
                handle.cancel()
            }
        } catch let error as URLError where error.code == .cancelled && Task.isCancelled {
            throw CancellationError()
        }
    }

    private static func outcome(_ data: Data?, _ response: URLResponse?, _ error: Error?) -> Result<(Data, HTTPURLResponse), Error> {
        if let error = error {
            return .failure(error)
        } else if let http = response as? HTTPURLResponse {
            return .success((data ?? Data(), http))
        } else {
            return .failure(URLError(.badServerResponse))
        }
    }

    /// The completion-handler form of `data(for:session:)`, for apps without
    /// async/await: signs and sends `request`, retries once after an
    /// authenticated `clock_skew` answer (signed afresh), waits out a short
    /// `429` as `data(for:)` does, returns a `3xx` without following it, and
    /// calls `completion` once, on the session's delegate queue (or the main
    /// queue after a 429 wait).
    ///
    /// Returns a handle whose `cancel()` cancels the request in flight (or the
    /// wait); `completion` then receives `URLError(.cancelled)`. A request that
    /// cannot be signed completes with the `TesseraError` and nothing is sent.
    @discardableResult
    public func dataTask(
        for request: URLRequest,
        session: URLSession = TesseraURLRequestSigner.defaultSession,
        completion: @escaping @Sendable (Result<(Data, HTTPURLResponse), Error>) -> Void
    ) -> TesseraDataTask {
        let handle = TesseraDataTask()
        attempt(request, session: session, skewRetried: false, rateLimitWaited: false, handle: handle, completion: completion)
        return handle
    }

    private func attempt(
        _ request: URLRequest,
        session: URLSession,
        skewRetried: Bool,
        rateLimitWaited: Bool,
        handle: TesseraDataTask,
        completion: @escaping @Sendable (Result<(Data, HTTPURLResponse), Error>) -> Void
    ) {
        var signedRequest = request // the unsigned original, signed afresh for every send
        let signed: SignedHeaders
        do {
            signed = try sign(&signedRequest)
        } catch {
            completion(.failure(error))
            return
        }
        let task = session.dataTask(with: signedRequest) { data, response, error in
            let result = Self.outcome(data, response, error)
            guard case let .success((_, http)) = result, !handle.isCancelled else {
                completion(result)
                return
            }
            if !skewRetried && self.handleSkewChallenge(http, signed: signed) {
                self.attempt(request, session: session, skewRetried: true, rateLimitWaited: rateLimitWaited,
                             handle: handle, completion: completion)
                return
            }
            if !rateLimitWaited, let nanoseconds = self.rateLimitWait(http) {
                DispatchQueue.main.asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: nanoseconds))) {
                    if handle.isCancelled {
                        completion(.failure(URLError(.cancelled)))
                    } else {
                        self.attempt(request, session: session, skewRetried: skewRetried, rateLimitWaited: true,
                                     handle: handle, completion: completion)
                    }
                }
                return
            }
            completion(result)
        }
        handle.start(task)
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

/// A request sent by `TesseraURLRequestSigner.dataTask(for:session:completion:)`:
/// `cancel()` cancels whichever attempt is in flight.
public final class TesseraDataTask: @unchecked Sendable {
    private let lock = NSLock()
    private var task: URLSessionDataTask?
    private var cancelled = false

    init() {}

    /// Whether `cancel()` was called.
    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }

    /// Cancels the request: the attempt in flight is cancelled and no other is started.
    public func cancel() {
        lock.lock()
        cancelled = true
        let current = task
        lock.unlock()
        current?.cancel()
    }

    /// Makes `task` the attempt in flight and resumes it, or cancels it when
    /// `cancel()` came first (it then completes with `URLError(.cancelled)`).
    func start(_ task: URLSessionDataTask) {
        TesseraRedirectGuard.install(on: task)
        lock.lock()
        self.task = task
        let cancelled = self.cancelled
        lock.unlock()
        task.resume()
        if cancelled {
            task.cancel()
        }
    }
}

/// The `URLSessionDataTask` of one async send, for `withTaskCancellationHandler`.
typealias DataTaskHandle = TesseraDataTask
