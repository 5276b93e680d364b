import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import Tessera

/// A signed request's redirect is handed back, never followed with its signature.
final class RedirectGuardTests: XCTestCase {
    func testTheDefaultSessionHasTheGuard() {
        XCTAssertTrue(TesseraURLRequestSigner.defaultSession.delegate === TesseraRedirectGuard.shared)
    }

    /// Every task the signer starts carries the guard as its own delegate,
    /// whatever session it runs in (where the platform has task delegates).
    func testTasksTheSignerStartsCarryTheGuard() throws {
        #if canImport(Darwin)
        guard #available(iOS 15.0, macOS 12.0, tvOS 15.0, watchOS 8.0, *) else {
            throw XCTSkip("no task delegates before iOS 15 / macOS 12")
        }
        // The discard port on loopback: nothing leaves the machine, and the
        // task is cancelled at once.
        let task = URLSession.shared.dataTask(with: URL(string: "http://127.0.0.1:9/")!)
        let handle = TesseraDataTask()
        handle.cancel()
        handle.start(task)
        XCTAssertTrue(task.delegate === TesseraRedirectGuard.shared)
        #else
        throw XCTSkip("swift-corelibs-foundation has no task delegates")
        #endif
    }

    func testTheGuardRefusesEveryRedirect() {
        let url = URL(string: "https://api.example.com/v1/orders")!
        let elsewhere = URL(string: "https://elsewhere.example/v1/orders")!
        let task = URLSession.shared.dataTask(with: url)
        defer { task.cancel() }
        for (status, target) in [(301, elsewhere), (307, elsewhere), (308, url)] {
            let response = HTTPURLResponse(
                url: url,
                statusCode: status,
                httpVersion: "HTTP/1.1",
                headerFields: ["Location": target.absoluteString]
            )!
            var followed: URLRequest? = URLRequest(url: target)
            TesseraRedirectGuard.shared.urlSession(
                URLSession.shared,
                task: task,
                willPerformHTTPRedirection: response,
                newRequest: URLRequest(url: target)
            ) { followed = $0 }
            XCTAssertNil(followed, "a \(status) to \(target) was followed")
        }
    }
}
