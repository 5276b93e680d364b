import Foundation

enum TestEnv {
    static let secret = hexData("0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186")

    static var vectorsDir: URL {
        if let dir = ProcessInfo.processInfo.environment["TESSERA_VECTORS_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        // Tests/TesseraTests/Support.swift -> repository root -> spec/vectors
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("spec/vectors")
    }

    static func env(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name]
    }
}

func hexData(_ hex: String) -> Data {
    var data = Data(capacity: hex.count / 2)
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        data.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return data
}
