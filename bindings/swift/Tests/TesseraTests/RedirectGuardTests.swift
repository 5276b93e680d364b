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
