import Foundation
import XCTest
@testable import Tessera

/// A JSON integer as Int64, however Foundation bridged it (Int on Linux, NSNumber on Darwin).
private func int64(_ value: Any?) -> Int64? {
    switch value {
    case let v as Int: return Int64(v)
    case let v as Int64: return v
    case let v as NSNumber: return v.int64Value
    default: return nil
    }
}

/// Every positive tessera-v1 vector of spec/vectors, signed from Swift (mirrors the Kotlin VectorsTest).
final class VectorsTests: XCTestCase {
    func testPositiveVectors() throws {
        let dir = TestEnv.vectorsDir
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            .filter { $0.hasPrefix("pos-") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 80, dir.path)
        var checked = 0
        for name in names {
            let data = try Data(contentsOf: dir.appendingPathComponent(name).appendingPathComponent("case.json"))
            let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            guard json["kind"] as? String == "tessera-v1" else { continue }
            let req = json["request"] as! [String: Any]
            let key = json["key"] as! [String: Any]
            let sign = json["sign"] as! [String: Any]
            let expected = json["expected"] as! [String: String]
            let headers = (req["headers"] as! [[String]]).map { HttpHeader(name: $0[0], value: $0[1]) }
            let request = HttpRequest(
                method: req["method"] as! String,
                url: req["target_uri"] as! String,
                headers: headers,
                body: Data(base64Encoded: req["body_base64"] as! String)!
            )
            let signer = try Signer(keyId: key["id"] as! String, secret: hexData(key["secret_hex"] as! String),
                                    coveredHeaders: sign["extra_components"] as! [String], coveredHeadersRequired: true)
            let signed = try signer.signAt(
                request: request,
                created: int64(sign["created"])!,
                nonce: sign["nonce"] as! String,
                expires: int64(sign["expires"])
            )
            let got = Dictionary(uniqueKeysWithValues: signed.headers.map { ($0.name, $0.value) })
            XCTAssertEqual(got["content-digest"], expected["content_digest"], name)
            XCTAssertEqual(got["signature-input"], expected["signature_input"], name)
            XCTAssertEqual(got["signature"], expected["signature"], name)
            XCTAssertEqual(try signer.signatureBase(request: request, signedHeaders: signed), expected["signature_base"], name)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 80)
    }

    /// Every unsignable vector: the signer refuses it (when built, or when signing)
    /// with the vector's `sign_error`, the code a verifier gives the same request.
    func testUnsignableVectorsAreRefusedWithTheirCodes() throws {
        let dir = TestEnv.vectorsDir
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            .filter { $0.hasPrefix("unsignable-") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 20, dir.path)
        for name in names {
            let data = try Data(contentsOf: dir.appendingPathComponent(name).appendingPathComponent("case.json"))
            let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            let req = json["request"] as! [String: Any]
            let key = json["key"] as! [String: Any]
            let sign = json["sign"] as! [String: Any]
            let expected = (json["expected"] as! [String: String])["sign_error"]!
            let headers = (req["headers"] as! [[String]]).map { HttpHeader(name: $0[0], value: $0[1]) }
            let request = HttpRequest(
                method: req["method"] as! String,
                url: req["target_uri"] as! String,
                headers: headers,
                body: Data(base64Encoded: req["body_base64"] as! String)!
            )
            do {
                let signer = try Signer(keyId: key["id"] as! String, secret: hexData(key["secret_hex"] as! String),
                                        coveredHeaders: sign["extra_components"] as! [String], coveredHeadersRequired: true)
                _ = try signer.signAt(
                    request: request,
                    created: int64(sign["created"])!,
                    nonce: sign["nonce"] as! String,
                    expires: int64(sign["expires"])
                )
                XCTFail("\(name) was signed")
            } catch let error as TesseraError {
                XCTAssertEqual(error.code, expected, "\(name): \(error.detail)")
            }
        }
    }
}
