import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import Tessera

/// `TesseraRateLimited` from a response head, and the opt-in wait of
/// `data(for:)` against `tessera serve --rate-limit 1/s --burst 1`, started by
/// bindings/run.sh (`TESSERA_RATELIMIT_URL`). Mirrors the Kotlin
/// `RateLimitedParseTest` and `RateLimitTest`.
final class RateLimitTests: XCTestCase {
    private func response(_ status: Int, _ headers: [String: String] = [:]) -> HTTPURLResponse {
        HTTPURLResponse(url: URL(string: "http://127.0.0.1/")!, statusCode: status, httpVersion: "HTTP/1.1", headerFields: headers)!
    }

    func testReadsRetryAfterPolicyAndRemainingFrom429Only() {
        let head = ["Retry-After": "30", "RateLimit-Policy": "\"default\";q=2;w=60", "RateLimit": "\"default\";r=0;t=60"]
        XCTAssertEqual(
            TesseraRateLimited(response: response(429, head)),
            TesseraRateLimited(retryAfterSeconds: 30, policy: "default", remaining: 0)
        )
        XCTAssertEqual(TesseraRateLimited(response: response(429, head))?.retryAfter, 30)
        XCTAssertNil(TesseraRateLimited(response: response(200, head)), "admitted responses carry RateLimit too")
        XCTAssertNil(TesseraRateLimited(response: response(503, head)))
        XCTAssertEqual(TesseraRateLimited(response: response(429)), TesseraRateLimited(retryAfterSeconds: nil, policy: nil, remaining: nil))
    }

    func testToleratesOtherForms() {
        XCTAssertNil(TesseraRateLimited(status: 429, retryAfter: "Wed, 21 Oct 2026 07:28:00 GMT", rateLimit: nil)?.retryAfterSeconds)
        XCTAssertNil(TesseraRateLimited(status: 429, retryAfter: "-1", rateLimit: nil)?.retryAfterSeconds)
        XCTAssertEqual(TesseraRateLimited(status: 429, retryAfter: " 7 ", rateLimit: nil)?.retryAfterSeconds, 7)
        XCTAssertEqual(
            TesseraRateLimited(status: 429, retryAfter: "1", rateLimit: "\"owner\";r=40;t=2, \"per-key\";r=0;t=1"),
            TesseraRateLimited(retryAfterSeconds: 1, policy: "per-key", remaining: 0)
        )
        XCTAssertEqual(
            TesseraRateLimited(status: 429, retryAfter: "1", rateLimit: "burst;t=1;r=3"),
            TesseraRateLimited(retryAfterSeconds: 1, policy: "burst", remaining: 3)
        )
        XCTAssertEqual(TesseraRateLimited(status: 429, retryAfter: "1", rateLimit: "\"a,b;c\";r=0")?.policy, "a,b;c")
    }

    func testTheWaitIsOffByDefaultAndCapped() throws {
        let signer = try Signer(keyId: "k", secret: TestEnv.secret)
        let limited = response(429, ["Retry-After": "1"])
        XCTAssertNil(TesseraURLRequestSigner(signer: signer).rateLimitWait(limited))
        XCTAssertNil(TesseraURLRequestSigner(signer: signer, maxRateLimitWait: 0.999).rateLimitWait(limited))
        XCTAssertEqual(TesseraURLRequestSigner(signer: signer, maxRateLimitWait: 1).rateLimitWait(limited), 1_000_000_000)
        XCTAssertNil(TesseraURLRequestSigner(signer: signer, maxRateLimitWait: 1e30).rateLimitWait(response(429, ["Retry-After": "999999999999999999"])))
    }

    // ---- a real limiter --------------------------------------------------------------

    private func limitedServer() throws -> (String, Signer) {
        guard let url = TestEnv.env("TESSERA_RATELIMIT_URL") else {
            throw XCTSkip("no rate-limited tessera server configured (TESSERA_RATELIMIT_URL)")
        }
        let signer = try Signer(keyId: TestEnv.env("TESSERA_KEY_ID")!, secret: hexData(TestEnv.env("TESSERA_KEY_SECRET_HEX")!))
        return (url, signer)
    }

    /// Sends until one request is accepted, so the next one within a second is refused.
    private func spend(_ tessera: TesseraURLRequestSigner, _ base: String) async throws {
        for _ in 0..<5 {
            let (_, response) = try await tessera.data(for: URLRequest(url: URL(string: base + "/v1/spend")!))
            if response.statusCode == 200 {
                return
            }
            XCTAssertEqual(response.statusCode, 429)
            try await Task.sleep(nanoseconds: 1_000_000_000 * (TesseraRateLimited(response: response)?.retryAfterSeconds ?? 1))
        }
        XCTFail("the rate-limited verifier never accepted a request")
    }

    func testByDefaultThe429IsReturnedWithItsRetryAfterAndPlan() async throws {
        let (base, signer) = try limitedServer()
        let tessera = TesseraURLRequestSigner(signer: signer)
        try await spend(tessera, base)
        let start = Date()
        let (data, response) = try await tessera.data(for: URLRequest(url: URL(string: base + "/v1/limited")!))
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.9, "returned at once, not waited")
        XCTAssertEqual(response.statusCode, 429)
        XCTAssertEqual(TesseraRateLimited(response: response), TesseraRateLimited(retryAfterSeconds: 1, policy: "default", remaining: 0))
        XCTAssertEqual(response.value(forHTTPHeaderField: "RateLimit-Policy"), "\"default\";q=1;w=1")
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        XCTAssertEqual(json?["code"] as? String, "rate_limited")
    }

    func testWithTheWaitOnTheRequestIsRetriedOnceSignedAfresh() async throws {
        let (base, signer) = try limitedServer()
        let tessera = TesseraURLRequestSigner(signer: signer, maxRateLimitWait: 2)
        try await spend(tessera, base)
        var post = URLRequest(url: URL(string: base + "/v1/orders")!)
        post.httpMethod = "POST"
        post.httpBody = Data("{\"qty\":3}".utf8)
        post.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let start = Date()
        let (_, response) = try await tessera.data(for: post)
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(response.statusCode, 200, "the retry after Retry-After is accepted (a resent signature would be refused)")
        XCTAssertGreaterThanOrEqual(elapsed, 1.0, "waited Retry-After before the retry")
        XCTAssertLessThan(elapsed, 5.0, "one wait only")
    }

    func testACapBelowRetryAfterReturnsThe429AtOnce() async throws {
        let (base, signer) = try limitedServer()
        let tessera = TesseraURLRequestSigner(signer: signer, maxRateLimitWait: 0.999)
        try await spend(tessera, base)
        let start = Date()
        let (_, response) = try await tessera.data(for: URLRequest(url: URL(string: base + "/v1/limited")!))
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.9, "Retry-After 1 s is over the cap: returned at once")
        XCTAssertEqual(response.statusCode, 429)
        XCTAssertEqual(TesseraRateLimited(response: response)?.retryAfterSeconds, 1)
    }
}
