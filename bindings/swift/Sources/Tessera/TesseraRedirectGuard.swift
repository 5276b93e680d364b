// Keeps URLSession from following a redirect with a signed request's headers.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A URLSession delegate that follows no redirect: it completes each one with
/// `nil`, so URLSession hands the `3xx` response to the caller.
///
/// URLSession follows a redirect with the request's header fields unchanged,
/// so a followed hop would carry the first request's `Signature`,
/// `Signature-Input` and `Content-Digest`: a signature for another URL, which
/// the redirect's target could replay where the first URL is served. With this
/// guard the `3xx` comes back instead; to follow it, call
/// `TesseraURLRequestSigner.data(for:)` for its `Location`, which signs that
/// request afresh.
///
/// `TesseraURLRequestSigner.defaultSession` has this delegate, and every task
/// the signer starts gets it as its own delegate where the platform has task
/// delegates (iOS 15, macOS 12, tvOS 15, watchOS 8 and later), whatever
/// session it runs in. On older systems (iOS 13 and 14, macOS 11) and on
/// Linux, a session of your own that follows redirects follows them with the
/// signed headers: give it this delegate, or one that completes
/// `willPerformHTTPRedirection` with `nil`.
public final class TesseraRedirectGuard: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    /// The guard (it holds no state, so one instance serves every session).
    public static let shared = TesseraRedirectGuard()

    override private init() {
        super.init()
    }

    /// Refuses the redirect: `completionHandler(nil)` returns the `3xx` to the caller.
    public func urlSession(
        _ session: URLSession,
        task: URLSessionTask,
        willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest,
        completionHandler: @escaping (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }

    /// Makes the guard `task`'s own delegate where the platform has task
    /// delegates, so that a session which follows redirects (such as
    /// `URLSession.shared`) does not follow this task's.
    static func install(on task: URLSessionTask) {
        #if canImport(Darwin)
        if #available(iOS 15.0, macOS 12.0, tvOS 15.0, watchOS 8.0, *) {
            task.delegate = shared
        }
        #endif
    }
}
