import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(CryptoKit)
import CryptoKit
#endif
import XCTest
@testable import Tessera

/// A provider that always fails, as a deleted Keychain item or a locked device would.
private final class FailingProvider: MacProvider, @unchecked Sendable {
    func mac(message: Data) throws -> Data {
        throw MacProviderError.Failed(reason: "errSecInteractionNotAllowed")
    }
}

/// A provider that returns a truncated tag.
private final class ShortProvider: MacProvider, @unchecked Sendable {
    func mac(message: Data) throws -> Data {
        Data(count: 20)
    }
}

/// The platform-MAC mode from Swift (mirrors the Kotlin PlatformKeyTest): a
/// CryptoKit HMAC provider signs byte-identically to the in-Rust key, failing
/// providers give `TesseraError.MacFailed`, the Keychain store round-trips, and
/// `TesseraURLRequestSigner` honours cancellation and has a completion-handler form.
final class PlatformKeyTests: XCTestCase {
    private let request = HttpRequest(
        method: "POST",
        url: "https://api.example.com/v1/orders?dry_run=1",
        headers: [HttpHeader(name: "Content-Type", value: "application/json")],
        body: Data("{\"qty\":1}".utf8)
    )

    #if canImport(CryptoKit)
    func testCryptoKitProviderSignsLikeTheInRustKey() throws {
        let inRust = try Signer(keyId: "phone-1", secret: TestEnv.secret, coveredHeaders: ["content-type"])
        let platform = try Signer.withMacProvider(
            keyId: "phone-1",
            provider: CryptoKitMacProvider(key: SymmetricKey(data: TestEnv.secret)),
            coveredHeaders: ["content-type"]
        )
        let a = try inRust.signAt(request: request, created: 1_700_000_000, nonce: "AAAAAAAAAAAAAAAAAAAAAA", expires: 1_700_000_060)
        let b = try platform.signAt(request: request, created: 1_700_000_000, nonce: "AAAAAAAAAAAAAAAAAAAAAA", expires: 1_700_000_060)
        XCTAssertEqual(a, b)
    }

    func testKeychainStoreAndKeychainProvider() throws {
        let keychain = TesseraKeychain(service: "dev.tessera.tests.\(UUID().uuidString)")
        let account = "phone-1"
        defer { try? keychain.delete(account: account) }
        do {
            try keychain.store(TestEnv.secret, account: account)
        } catch TesseraKeychainError.status(let status, _) where status == errSecMissingEntitlement {
            throw XCTSkip("this test host has no Keychain entitlement (\(status))")
        }
        XCTAssertEqual(try keychain.load(account: account), TestEnv.secret)
        let platform = try Signer.withMacProvider(
            keyId: "phone-1", provider: CryptoKitMacProvider(keychain: keychain, account: account),
            coveredHeaders: ["content-type"]
        )
        let inRust = try Signer(keyId: "phone-1", secret: TestEnv.secret, coveredHeaders: ["content-type"])
        XCTAssertEqual(
            try platform.signAt(request: request, created: 1_700_000_000, nonce: "AAAAAAAAAAAAAAAAAAAAAA", expires: nil),
            try inRust.signAt(request: request, created: 1_700_000_000, nonce: "AAAAAAAAAAAAAAAAAAAAAA", expires: nil)
        )
        try keychain.delete(account: account)
        XCTAssertNil(try keychain.load(account: account))
        XCTAssertThrowsError(try platform.sign(request: request)) { error in
            XCTAssertEqual((error as? TesseraError)?.code, "mac_provider_failed")
        }
    }
    #endif

    func testFailingProvidersGiveNamedErrors() throws {
        for (provider, code) in [(FailingProvider() as MacProvider, "mac_provider_failed"), (ShortProvider(), "mac_wrong_length")] {
            let signer = try Signer.withMacProvider(keyId: "phone-1", provider: provider)
            XCTAssertThrowsError(try signer.sign(request: request)) { error in
                guard case .MacFailed = error as? TesseraError else {
                    return XCTFail("expected MacFailed, got \(error)")
                }
                XCTAssertEqual((error as? TesseraError)?.code, code)
            }
            XCTAssertEqual(signer.clockOffset(), 0)
        }
    }

    func testCancellingTheTaskCancelsTheRequest() async throws {
        guard let base = TestEnv.env("TESSERA_SERVER_URL") else {
            throw XCTSkip("no tessera server configured (TESSERA_SERVER_URL)")
        }
        let signer = TesseraURLRequestSigner(signer: try Signer(keyId: TestEnv.env("TESSERA_KEY_ID")!,
                                                                secret: hexData(TestEnv.env("TESSERA_KEY_SECRET_HEX")!)))
        let task = Task { try await signer.data(for: URLRequest(url: URL(string: base + "/v1/cancelled")!)) }
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("a cancelled task completed")
        } catch is CancellationError {
        } catch let error as URLError where error.code == .cancelled {
        }
    }

    func testCompletionHandlerVariant() throws {
        guard let base = TestEnv.env("TESSERA_SERVER_URL") else {
            throw XCTSkip("no tessera server configured (TESSERA_SERVER_URL)")
        }
        let core = try Signer(keyId: TestEnv.env("TESSERA_KEY_ID")!, secret: hexData(TestEnv.env("TESSERA_KEY_SECRET_HEX")!))
        core.setClockOffset(seconds: -3600)
        let signer = TesseraURLRequestSigner(signer: core)
        let done = expectation(description: "completion")
        signer.dataTask(for: URLRequest(url: URL(string: base + "/v1/skew")!)) { result in
            switch result {
            case let .success((_, response)):
                XCTAssertEqual(response.statusCode, 200)
            case let .failure(error):
                XCTFail("\(error)")
            }
            done.fulfill()
        }
        wait(for: [done], timeout: 10)
        XCTAssertLessThanOrEqual(abs(core.clockOffset()), 2)

        let failing = TesseraURLRequestSigner(signer: try Signer.withMacProvider(keyId: "phone-1", provider: FailingProvider()))
        let refused = expectation(description: "refused")
        failing.dataTask(for: URLRequest(url: URL(string: base + "/v1/never")!)) { result in
            if case let .failure(error) = result {
                XCTAssertEqual((error as? TesseraError)?.code, "mac_provider_failed")
            } else {
                XCTFail("a request whose MAC failed was sent")
            }
            refused.fulfill()
        }
        wait(for: [refused], timeout: 10)
    }
}
