// Hand-written additions to the generated `dev.tessera` bindings.
package dev.tessera

/**
 * The stable tessera-v1 error code of any [TesseraException]
 * (`"missing_component"`, `"invalid_parameter"`, `"bad_signature"`, ...), or
 * for [TesseraException.MacFailed] one of the client's own codes,
 * `"mac_provider_failed"` or `"mac_wrong_length"` (never sent by a server).
 *
 * Every subclass has a `code` field; this reads it without a `when`.
 */
val TesseraException.code: String
    get() = when (this) {
        is TesseraException.InvalidConfig -> code
        is TesseraException.InvalidRequest -> code
        is TesseraException.InvalidChallenge -> code
        is TesseraException.MacFailed -> code
    }

/** The detail message of any [TesseraException]; safe to log (no key material). */
val TesseraException.detail: String
    get() = when (this) {
        is TesseraException.InvalidConfig -> detail
        is TesseraException.InvalidRequest -> detail
        is TesseraException.InvalidChallenge -> detail
        is TesseraException.MacFailed -> detail
    }
