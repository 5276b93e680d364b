// Hand-written additions to the generated `Tessera` bindings.

extension TesseraError {
    /// The stable tessera-v1 error code (`"missing_component"`, `"invalid_parameter"`,
    /// `"bad_signature"`, ...), whatever the case; for `.MacFailed` one of the client's
    /// own codes, `"mac_provider_failed"` or `"mac_wrong_length"` (never sent by a server).
    public var code: String {
        switch self {
        case let .InvalidConfig(code, _), let .InvalidRequest(code, _), let .InvalidChallenge(code, _),
             let .MacFailed(code, _):
            return code
        }
    }

    /// The detail message; safe to log (no key material).
    public var detail: String {
        switch self {
        case let .InvalidConfig(_, detail), let .InvalidRequest(_, detail), let .InvalidChallenge(_, detail),
             let .MacFailed(_, detail):
            return detail
        }
    }
}
