// The Tessera secret in the iOS/macOS Keychain, and a MacProvider on CryptoKit.
//
// The Secure Enclave holds only P-256 private keys: it cannot hold an HMAC key
// or compute HMAC-SHA256. The strongest place for Tessera's secret on Apple
// platforms is therefore the Keychain (encrypted at rest with a key the Secure
// Enclave protects), with the MAC computed by CryptoKit in app memory, the
// secret read from the Keychain for that one computation.
import Foundation
#if canImport(Security)
import Security
#endif
#if canImport(CryptoKit)
import CryptoKit
#endif

#if canImport(Security)
/// Stores Tessera secrets as Keychain generic passwords (`kSecClassGenericPassword`),
/// readable only on this device after its first unlock
/// (`kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`: never in backups, never
/// moved to another device) and never synchronized through iCloud Keychain
/// (`kSecAttrSynchronizable` false).
///
/// Provisioning (spec §5.8): the server issues the secret once over TLS; call
/// `store(_:account:)` at once and drop every other copy.
public struct TesseraKeychain: Sendable {
    /// The `kSecAttrService` of every item this store writes.
    public let service: String

    /// A store whose items carry `service` (default `"dev.tessera"`).
    public init(service: String = "dev.tessera") {
        self.service = service
    }

    /// Stores `secret` for `account` (for example the key id), replacing any
    /// earlier secret for it.
    public func store(_ secret: Data, account: String) throws {
        let query = baseQuery(account: account)
        let status = SecItemDelete(query as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw TesseraKeychainError.status(status, "deleting the old item")
        }
        var add = query
        add[kSecValueData as String] = secret
        add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let added = SecItemAdd(add as CFDictionary, nil)
        guard added == errSecSuccess else {
            throw TesseraKeychainError.status(added, "adding the item")
        }
    }

    /// The secret stored for `account`, or nil when there is none.
    public func load(account: String) throws -> Data? {
        var query = baseQuery(account: account)
        query[kSecReturnData as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        switch status {
        case errSecSuccess:
            guard let data = item as? Data else {
                throw TesseraKeychainError.status(status, "reading the item (not data)")
            }
            return data
        case errSecItemNotFound:
            return nil
        default:
            throw TesseraKeychainError.status(status, "reading the item")
        }
    }

    /// Deletes the secret for `account` (logout, key rotation); nothing happens when there is none.
    public func delete(account: String) throws {
        let status = SecItemDelete(baseQuery(account: account) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw TesseraKeychainError.status(status, "deleting the item")
        }
    }

    private func baseQuery(account: String) -> [String: Any] {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecAttrSynchronizable as String: kCFBooleanFalse as Any,
        ]
        if #available(macOS 10.15, iOS 13.0, *) {
            // macOS: the data-protection keychain, with the same accessibility rules as iOS.
            query[kSecUseDataProtectionKeychain as String] = true
        }
        return query
    }
}

/// A Keychain call that failed, with its `OSStatus` and what was being done.
public enum TesseraKeychainError: Error, Equatable, Sendable {
    /// `SecItem*` returned `status` while doing `what`.
    case status(OSStatus, String)
}
#endif

#if canImport(CryptoKit)
/// Computes Tessera's HMAC-SHA256 with CryptoKit (`HMAC<SHA256>`), for
/// `Signer.withMacProvider(keyId:provider:)`.
///
/// `init(key:)` keeps a `SymmetricKey` for the provider's lifetime;
/// `init(keychain:account:)` keeps nothing: it reads the secret from the
/// Keychain for each MAC and lets go of it at once, so the secret is in app
/// memory only while a MAC is computed. A missing item or a Keychain error
/// throws `MacProviderError.Failed`, and signing then fails with
/// `TesseraError.MacFailed` (code `mac_provider_failed`): nothing is sent.
@available(iOS 13.0, macOS 10.15, *)
public final class CryptoKitMacProvider: MacProvider, @unchecked Sendable {
    // Immutable after init; SymmetricKey is a value type and HMAC is stateless here.
    private let source: Source

    private enum Source {
        case key(SymmetricKey)
        case keychain(TesseraKeychain, String)
    }

    /// A provider with the key in memory.
    public init(key: SymmetricKey) {
        source = .key(key)
    }

    /// A provider that reads the secret of `account` from `keychain` for every MAC.
    public init(keychain: TesseraKeychain = TesseraKeychain(), account: String) {
        source = .keychain(keychain, account)
    }

    public func mac(message: Data) throws -> Data {
        switch source {
        case let .key(key):
            return Data(HMAC<SHA256>.authenticationCode(for: message, using: key))
        case let .keychain(keychain, account):
            let secret: Data?
            do {
                secret = try keychain.load(account: account)
            } catch {
                throw MacProviderError.Failed(reason: "Keychain: \(error)")
            }
            guard let secret = secret else {
                throw MacProviderError.Failed(reason: "no Tessera secret in the Keychain for \(account); provision again")
            }
            return Data(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
        }
    }
}
#endif
