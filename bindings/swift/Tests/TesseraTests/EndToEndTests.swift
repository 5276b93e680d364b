import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import Tessera

/// URLSession with TesseraURLRequestSigner against `tessera serve` on loopback,
/// started by bindings/run.sh (mirrors the Kotlin EndToEndTest).
final class EndToEndTests: XCTestCase {
    private var base = ""
    private var keyId = ""
    private var secret = Data()

    override func setUpWithError() throws {
        guard let url = TestEnv.env("TESSERA_SERVER_URL") else {
            throw XCTSkip("no tessera server configured (TESSERA_SERVER_URL)")
        }
        base = url
        keyId = TestEnv.env("TESSERA_KEY_ID")!
        secret = hexData(TestEnv.env("TESSERA_KEY_SECRET_HEX")!)
    }

    private func request(_ path: String, method: String = "GET", body: Data? = nil) -> URLRequest {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        if let body = body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        return request
    }

    private func send(_ request: URLRequest) async throws -> (Int, [String: Any], HTTPURLResponse) {
        let (data, http): (Data, HTTPURLResponse) = try await withCheckedThrowingContinuation { continuation in
            URLSession.shared.dataTask(with: request) { data, response, error in
                if let error = error {
                    continuation.resume(throwing: error)
                } else {
                    continuation.resume(returning: (data ?? Data(), response as! HTTPURLResponse))
                }
            }.resume()
        }
        let json = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        return (http.statusCode, json, http)
    }

    func testSignedRequestsAreAccepted() async throws {
        let signer = TesseraURLRequestSigner(signer: try Signer(keyId: keyId, secret: secret, coveredHeaders: ["content-type"]))
        var post = request("/v1/orders", method: "POST", body: Data("{\"qty\":1}".utf8))
        try signer.sign(&post)
        let (status, json, _) = try await send(post)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(json["key_id"] as? String, keyId)
        XCTAssertEqual(json["method"] as? String, "POST")
    }

    func testTamperedAndReplayedRequestsAreRejected() async throws {
        let signer = TesseraURLRequestSigner(signer: try Signer(keyId: keyId, secret: secret))
        var tampered = request("/v1/orders", method: "POST", body: Data("{\"qty\":1}".utf8))
        try signer.sign(&tampered)
        tampered.httpBody = Data("{\"qty\":9}".utf8)
        let (status, json, _) = try await send(tampered)
        XCTAssertEqual(status, 401)
        XCTAssertEqual(json["code"] as? String, "digest_mismatch")

        var once = request("/v1/once")
        try signer.sign(&once)
        let (first, _, _) = try await send(once)
        XCTAssertEqual(first, 200)
        let (again, replayJSON, _) = try await send(once)
        XCTAssertEqual(again, 401)
        XCTAssertEqual(replayJSON["code"] as? String, "replayed")
    }

    func testClockSkewIsRecoveredWithOneRetry() async throws {
        let core = try Signer(keyId: keyId, secret: secret)
        core.setClockOffset(seconds: -3600)
        let signer = TesseraURLRequestSigner(signer: core)
        let (_, response) = try await signer.data(for: request("/v1/skew"))
        XCTAssertEqual(response.statusCode, 200)
        XCTAssertLessThanOrEqual(abs(core.clockOffset()), 2)
    }
}
