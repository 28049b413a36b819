// SymmetricState (Noise rev 34 §5.2) with SHA-256 and HKDF (§4.3):
//
//   HKDF(ck, ikm, n): temp = HMAC(ck, ikm)
//                     out1 = HMAC(temp, 0x01)
//                     out2 = HMAC(temp, out1 || 0x02)
//                     out3 = HMAC(temp, out2 || 0x03)
//
// HASHLEN is 32, so temp_k outputs need no truncation and every value is a
// Key32 on the stack.

struct SymmetricState {
    var cipher = CipherState()
    var ck: Key32
    var h: Key32

    /// InitializeSymmetric: h = name padded to 32 bytes, or HASH(name) when
    /// longer (our 36-byte name is hashed); ck = h.
    init(protocolName: [UInt8]) {
        if protocolName.count <= Key32.byteCount {
            var padded = protocolName
            padded.append(contentsOf: repeatElement(0, count: Key32.byteCount - protocolName.count))
            h = Key32(bytes: padded)!
        } else {
            h = protocolName.withUnsafeBytes { Sodium.sha256($0, UnsafeRawBufferPointer(start: nil, count: 0)) }
        }
        ck = h
    }

    /// One HKDF output block: HMAC(temp, previous || index).
    @inline(__always)
    private static func expand(_ temp: Key32, _ previous: Key32?, _ index: UInt8) -> Key32 {
        var i = index
        return withUnsafeBytes(of: &i) { ib in
            if let previous {
                return previous.withUnsafeBytes { Sodium.hmacSHA256(key: temp, $0, ib) }
            }
            return Sodium.hmacSHA256(key: temp, ib)
        }
    }

    static func hkdf2(_ ck: Key32, _ ikm: UnsafeRawBufferPointer) -> (Key32, Key32) {
        var temp = Sodium.hmacSHA256(key: ck, ikm)
        let out1 = expand(temp, nil, 1)
        let out2 = expand(temp, out1, 2)
        temp.wipe()
        return (out1, out2)
    }

    static func hkdf3(_ ck: Key32, _ ikm: UnsafeRawBufferPointer) -> (Key32, Key32, Key32) {
        var temp = Sodium.hmacSHA256(key: ck, ikm)
        let out1 = expand(temp, nil, 1)
        let out2 = expand(temp, out1, 2)
        let out3 = expand(temp, out2, 3)
        temp.wipe()
        return (out1, out2, out3)
    }

    mutating func mixKey(_ ikm: Key32) {
        let (newCK, tempK) = ikm.withUnsafeBytes { SymmetricState.hkdf2(ck, $0) }
        ck = newCK
        cipher.initializeKey(tempK)
    }

    mutating func mixHash(_ data: UnsafeRawBufferPointer) {
        h = h.withUnsafeBytes { Sodium.sha256($0, data) }
    }

    mutating func mixHash(_ data: Key32) {
        data.withUnsafeBytes { mixHash($0) }
    }

    /// MixKeyAndHash (the `psk` token).
    mutating func mixKeyAndHash(_ ikm: Key32) {
        let (newCK, tempH, tempK) = ikm.withUnsafeBytes { SymmetricState.hkdf3(ck, $0) }
        ck = newCK
        mixHash(tempH)
        cipher.initializeKey(tempK)
    }

    /// EncryptAndHash: ciphertext = EncryptWithAd(h, plaintext); MixHash(ciphertext).
    mutating func encryptAndHash(_ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        let hh = h
        let n = try hh.withUnsafeBytes { (ad) throws(NoiseError) -> Int in
            try cipher.encrypt(ad: ad, plaintext: plaintext, into: out)
        }
        mixHash(UnsafeRawBufferPointer(start: out.baseAddress, count: n))
        return n
    }

    /// DecryptAndHash: plaintext = DecryptWithAd(h, ciphertext); MixHash(ciphertext).
    /// `out` must not alias `ciphertext` (the ciphertext is hashed afterwards).
    mutating func decryptAndHash(_ ciphertext: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        let hh = h
        let n = try hh.withUnsafeBytes { (ad) throws(NoiseError) -> Int in
            try cipher.decrypt(ad: ad, ciphertext: ciphertext, into: out)
        }
        mixHash(ciphertext)
        return n
    }

    /// Split: (initiator→responder, responder→initiator) ciphers.
    func split() -> (CipherState, CipherState) {
        let (k1, k2) = SymmetricState.hkdf2(ck, UnsafeRawBufferPointer(start: nil, count: 0))
        return (CipherState(key: k1), CipherState(key: k2))
    }

    mutating func wipe() {
        ck.wipe()
        h.wipe()
        cipher.wipe()
    }
}
