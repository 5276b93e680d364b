import Foundation
import XCTest
@testable import Tessera

/// The FFI API from Swift: signing, errors with codes, clock offset (mirrors the Kotlin SignerTest).
final class SignerTests: XCTestCase {
    private func get(_ url: String, _ headers: [(String, String)] = []) -> HttpRequest {
        HttpRequest(method: "GET", url: url, headers: headers.map { HttpHeader(name: $0.0, value: $0.1) }, body: nil)
    }

    private func code(_ block: () throws -> Void) -> String? {
        do {
            try block()
            return nil
        } catch let error as TesseraError {
            return error.code
        } catch {
            return "unexpected \(error)"
        }
    }

    func testSignAtReproducesTheBasicVector() throws {
        let signer = try Signer(keyId: "device-7f3a2c", secret: TestEnv.secret)
        let request = get("https://api.example.com/v1/orders?limit=10", [("Accept", "application/json")])
        let signed = try signer.signAt(request: request, created: 1_700_000_000, nonce: "sWdxpjKCug4loESa7u_Yzg", expires: nil)
        XCTAssertEqual(signed.headers.map { $0.name }, ["content-digest", "signature-input", "signature"])
        XCTAssertEqual(signed.headers[2].value, "tessera=:egSwrhVo92N7oJhkbfRWjM7ZdfnfSQl4/SXI217/40g=:")
        XCTAssertEqual(signed.created, 1_700_000_000)
        XCTAssertTrue(try signer.signatureBase(request: request, signedHeaders: signed)
            .hasPrefix("\"@method\": GET\n\"@authority\": api.example.com\n"))
    }

    func testSignUsesFreshNoncesAndCoversExtraHeaders() throws {
        let signer = try Signer(keyId: "device-7f3a2c", secret: TestEnv.secret, coveredHeaders: ["content-type"], expiresAfterSecs: 60)
        XCTAssertEqual(signer.coveredHeaders(), ["content-type"])
        let body = Data("{\"qty\":1}".utf8)
        var request = HttpRequest(method: "POST", url: "https://api.example.com/v1/orders",
                                  headers: [HttpHeader(name: "Content-Type", value: "application/json")], body: body)
        let a = try signer.sign(request: request)
        let b = try signer.sign(request: request)
        XCTAssertNotEqual(a.nonce, b.nonce)
        XCTAssertEqual(a.nonce.count, 22)
        XCTAssertLessThanOrEqual(abs(a.created - Int64(Date().timeIntervalSince1970)), 2)
        XCTAssertEqual(a.expires, a.created + 60)
        XCTAssertEqual(a.headers[0].value, contentDigest(body: body))
        request.body = nil
        XCTAssertEqual(code { _ = try signer.signWithDigest(request: request, bodySha256: Data(count: 5)) }, "invalid_parameter")
    }

    func testConfigurationErrorsCarryCodes() {
        XCTAssertEqual(code { _ = try Signer(keyId: "has space", secret: TestEnv.secret) }, "invalid_parameter")
        XCTAssertEqual(code { _ = try Signer(keyId: "k", secret: Data(count: 15)) }, "invalid_parameter")
        XCTAssertEqual(code { _ = try Signer(keyId: "k", secret: TestEnv.secret, coveredHeaders: ["host"]) }, "forbidden_component")
        XCTAssertEqual(code { _ = try Signer(keyId: "k", secret: TestEnv.secret, coveredHeaders: ["content-digest"]) }, "duplicate_component")
    }

    func testUppercaseCoveredNamesAreRefusedNotLowercased() throws {
        for (names, bad, lower) in [(["Content-Type"], "Content-Type", "content-type"),
                                    (["x-request-id", "X-Request-ID"], "X-Request-ID", "x-request-id")] {
            do {
                _ = try Signer(keyId: "k1", secret: TestEnv.secret, coveredHeaders: names)
                XCTFail("\(bad) was accepted")
            } catch let TesseraError.InvalidConfig(code, detail) {
                XCTAssertEqual(code, "malformed_signature")
                XCTAssertTrue(detail.contains("\"\(bad)\"") && detail.contains("use \"\(lower)\""), detail)
            }
        }
        // Lowercase names are fine, whatever the case of the header lines.
        let signer = try Signer(keyId: "k1", secret: TestEnv.secret, coveredHeaders: ["content-type"])
        XCTAssertEqual(signer.coveredHeaders(), ["content-type"])
        _ = try signer.sign(request: get("https://api.example.com/", [("CONTENT-TYPE", "text/plain")]))
    }

    func testMethodsAreSignedExactlyAsGiven() throws {
        let signer = try Signer(keyId: "device-7f3a2c", secret: TestEnv.secret)
        var signatures: [String: String] = [:]
        for method in ["get", "PaTcH", "GET"] {
            var request = get("https://api.example.com/v1/orders?limit=10")
            request.method = method
            let signed = try signer.signAt(request: request, created: 1_700_000_000, nonce: "sWdxpjKCug4loESa7u_Yzg", expires: nil)
            XCTAssertTrue(try signer.signatureBase(request: request, signedHeaders: signed).hasPrefix("\"@method\": \(method)\n"), method)
            signatures[method] = signed.headers[2].value
        }
        XCTAssertNotEqual(signatures["get"], signatures["GET"])
    }

    func testURLsAreSignedVerbatim() throws {
        let signer = try Signer(keyId: "device-7f3a2c", secret: TestEnv.secret)
        func base(_ url: String) throws -> String {
            let signed = try signer.signAt(request: get(url), created: 1_700_000_000, nonce: "sWdxpjKCug4loESa7u_Yzg", expires: nil)
            return try signer.signatureBase(request: get(url), signedHeaders: signed)
        }
        let odd = try base(#"https://api.example.com/a/"q"/<b>/c\d/^/`e`/{f}/g|h?x="1"&y=<2>&z=`^{}|"#)
        XCTAssertTrue(odd.contains(#""@path": /a/"q"/<b>/c\d/^/`e`/{f}/g|h"# + "\n" + #""@query": ?x="1"&y=<2>&z=`^{}|"# + "\n"), odd)
        XCTAssertTrue(try base("https://api.ex%61mple.com/v1/x").contains("\"@authority\": api.ex%61mple.com\n"))
        for url in ["https://api.example.com/café", "https://api.example.com/x?q=ÿ", "https://api.example.com/a b"] {
            do {
                _ = try signer.sign(request: get(url))
                XCTFail("\(url) was signed")
            } catch let TesseraError.InvalidRequest(code, _) {
                XCTAssertEqual(code, "invalid_field_value", url)
            }
        }
    }

    func testCoveredHeadersAreCoveredWhenPresentUnlessRequired() throws {
        let signer = try Signer(keyId: "k1", secret: TestEnv.secret, coveredHeaders: ["content-type"])
        let bare = try signer.sign(request: get("https://api.example.com/v1/me"))
        let input = bare.headers.first { $0.name.lowercased() == "signature-input" }?.value ?? ""
        XCTAssertFalse(input.contains("content-type"), input)
        let typed = try signer.sign(request: get("https://api.example.com/v1/me", [("Content-Type", "application/json")]))
        let typedInput = typed.headers.first { $0.name.lowercased() == "signature-input" }?.value ?? ""
        XCTAssertTrue(typedInput.contains("\"content-digest\" \"content-type\")"), typedInput)
    }

    func testRequestErrorsCarryCodes() throws {
        let signer = try Signer(keyId: "k1", secret: TestEnv.secret, coveredHeaders: ["content-type"], coveredHeadersRequired: true)
        do {
            _ = try signer.sign(request: get("https://api.example.com/"))
            XCTFail("signed without a covered header")
        } catch let TesseraError.InvalidRequest(code, detail) {
            XCTAssertEqual(code, "missing_component")
            XCTAssertTrue(detail.contains("content-type"))
        }
        XCTAssertEqual(code { _ = try signer.sign(request: self.get("https://api.example.com/", [("content-type", "a\nb")])) }, "invalid_field_value")
        XCTAssertEqual(code { _ = try signer.sign(request: self.get("/relative", [("content-type", "x")])) }, "invalid_field_value")
    }

    func testClockOffsetAndForgedChallenges() throws {
        let signer = try Signer(keyId: "k1", secret: TestEnv.secret)
        XCTAssertEqual(signer.clockOffset(), 0)
        let sent = try signer.sign(request: get("https://api.example.com/"))
        let forged = "time=1, keyid=\"k1\", nonce=\"\(sent.nonce)\", mac=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
        XCTAssertEqual(code { _ = try signer.applySkewChallenge(headerValue: forged, sentNonce: sent.nonce) }, "bad_signature")
        XCTAssertEqual(code { _ = try signer.applySkewChallenge(headerValue: forged, sentNonce: String(repeating: "B", count: 22)) }, "malformed_signature")
        XCTAssertEqual(signer.clockOffset(), 0)
        signer.setClockOffset(seconds: 120)
        XCTAssertEqual(signer.clockOffset(), 120)
        XCTAssertLessThanOrEqual(abs(signer.now() - (Int64(Date().timeIntervalSince1970) + 120)), 2)
    }

    func testURLRequestSignerSetsOnlyTesseraHeaders() throws {
        let signer = try Signer(keyId: "k1", secret: TestEnv.secret, coveredHeaders: ["content-type"])
        var request = URLRequest(url: URL(string: "https://api.example.com/v1/orders?dry_run=1")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data("{}".utf8)
        let signed = try TesseraURLRequestSigner(signer: signer).sign(&request)
        XCTAssertEqual(request.value(forHTTPHeaderField: "Signature"), signed.headers[2].value)
        XCTAssertNotNil(request.value(forHTTPHeaderField: "Signature-Input"))
        XCTAssertNotNil(request.value(forHTTPHeaderField: "Content-Digest"))
        XCTAssertNil(request.value(forHTTPHeaderField: "Authorization"))
        XCTAssertEqual(request.allHTTPHeaderFields?.count, 4)
    }
}
