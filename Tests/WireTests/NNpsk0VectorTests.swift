// Protocol version 1 (kept to refuse old agents): the published
// Noise_NNpsk0_25519_ChaChaPoly_SHA256 vector (cacophony set)
// must reproduce byte for byte: handshake hash, both handshake messages and
// every transport message, with the vector's ephemerals injected.
import Foundation
import XCTest
@testable import Wire

final class NNpsk0VectorTests: XCTestCase {
    struct Vector {
        let prologue: [UInt8]
        let psk: Key32
        let initEphemeral: Key32
        let respEphemeral: Key32
        let handshakeHash: [UInt8]
        let messages: [(payload: [UInt8], ciphertext: [UInt8])]
    }

    func loadVectors() throws -> [Vector] {
        let json = try JSONSerialization.jsonObject(with: Fixtures.data("noise-nnpsk0.json")) as! [String: Any]
        return (json["vectors"] as! [[String: Any]]).map { v in
            XCTAssertEqual(v["protocol_name"] as? String, NNpsk0Handshake.protocolName)
            XCTAssertEqual(v["init_prologue"] as? String, v["resp_prologue"] as? String)
            return Vector(
                prologue: Hex.decode(v["init_prologue"] as! String),
                psk: Key32(bytes: Hex.decode((v["init_psks"] as! [String])[0]))!,
                initEphemeral: Key32(bytes: Hex.decode(v["init_ephemeral"] as! String))!,
                respEphemeral: Key32(bytes: Hex.decode(v["resp_ephemeral"] as! String))!,
                handshakeHash: Hex.decode(v["handshake_hash"] as! String),
                messages: (v["messages"] as! [[String: String]]).map {
                    (Hex.decode($0["payload"]!), Hex.decode($0["ciphertext"]!))
                })
        }
    }

    func testVectorReproducesExactly() throws {
        let vectors = try loadVectors()
        XCTAssertFalse(vectors.isEmpty)
        for v in vectors {
            var initiator = NNpsk0Handshake(role: .initiator, prologue: v.prologue, psk: v.psk, ephemeralSecret: v.initEphemeral)
            var responder = NNpsk0Handshake(role: .responder, prologue: v.prologue, psk: v.psk, ephemeralSecret: v.respEphemeral)

            let m1 = try initiator.writeMessage(payload: v.messages[0].payload)
            XCTAssertEqual(Hex.encode(m1), Hex.encode(v.messages[0].ciphertext), "message 1")
            XCTAssertEqual(try responder.readMessage(m1), v.messages[0].payload)

            let m2 = try responder.writeMessage(payload: v.messages[1].payload)
            XCTAssertEqual(Hex.encode(m2), Hex.encode(v.messages[1].ciphertext), "message 2")
            XCTAssertEqual(try initiator.readMessage(m2), v.messages[1].payload)

            XCTAssertTrue(initiator.isComplete && responder.isComplete)
            XCTAssertEqual(Hex.encode(initiator.handshakeHash.bytes), Hex.encode(v.handshakeHash), "handshake hash")
            XCTAssertEqual(initiator.handshakeHash, responder.handshakeHash)

            var (iSend, iRecv) = try initiator.split()
            var (rSend, rRecv) = try responder.split()
            for (i, m) in v.messages.enumerated().dropFirst(2) {
                // Transport messages alternate, starting initiator -> responder.
                let fromInitiator = i % 2 == 0
                let ct = fromInitiator ? try iSend.encrypt(m.payload) : try rSend.encrypt(m.payload)
                XCTAssertEqual(Hex.encode(ct), Hex.encode(m.ciphertext), "transport message \(i)")
                let pt = fromInitiator ? try rRecv.decrypt(ct) : try iRecv.decrypt(ct)
                XCTAssertEqual(pt, m.payload, "transport message \(i) opens")
            }
        }
    }

    func testHandshakeRejectsWrongPSKBeforeAnyDH() throws {
        let psk = Key32.random()
        var initiator = NNpsk0Handshake(role: .initiator, prologue: [1, 2, 3], psk: psk)
        var responder = NNpsk0Handshake(role: .responder, prologue: [1, 2, 3], psk: Key32.random())
        let m1 = try initiator.writeMessage(payload: [9, 9])
        XCTAssertThrowsError(try responder.readMessage(m1)) { XCTAssertEqual($0 as? NoiseError, .decryptFailed) }
        // A failed handshake is abandoned.
        XCTAssertThrowsError(try responder.readMessage(m1)) { XCTAssertEqual($0 as? NoiseError, .wrongState) }
    }

    func testPrologueMismatchFails() throws {
        let psk = Key32.random()
        var initiator = NNpsk0Handshake(role: .initiator, prologue: Array("VGL\u{1}\u{1}a".utf8), psk: psk)
        var responder = NNpsk0Handshake(role: .responder, prologue: Array("VGL\u{1}\u{1}b".utf8), psk: psk)
        let m1 = try initiator.writeMessage(payload: [])
        XCTAssertThrowsError(try responder.readMessage(m1)) { XCTAssertEqual($0 as? NoiseError, .decryptFailed) }
    }

    func testLowOrderEphemeralRejected() throws {
        // An initiator who knows the PSK but sends the all-zero point as e:
        // the responder's DH(e, re) is zero and the handshake aborts.
        let psk = Key32.random()
        var attacker = NNpsk0Handshake(role: .initiator, prologue: [], psk: psk)
        var m1 = try attacker.writeMessage(payload: [])
        // Rebuild message 1 with e = 0 so its tag still verifies.
        var sym = SymmetricState(protocolName: Array(NNpsk0Handshake.protocolName.utf8))
        sym.mixHash(UnsafeRawBufferPointer(start: nil, count: 0))
        sym.mixKeyAndHash(psk)
        let zero = Key32()
        sym.mixHash(zero)
        sym.mixKey(zero)
        var tag = [UInt8](repeating: 0, count: 16)
        let n = try tag.withUnsafeMutableBytes { (o) throws(NoiseError) -> Int in
            try sym.encryptAndHash(UnsafeRawBufferPointer(start: nil, count: 0), into: o)
        }
        XCTAssertEqual(n, 16)
        m1 = zero.bytes + tag
        var responder = NNpsk0Handshake(role: .responder, prologue: [], psk: psk)
        XCTAssertEqual(try responder.readMessage(m1), [])
        XCTAssertThrowsError(try responder.writeMessage(payload: [])) { XCTAssertEqual($0 as? NoiseError, .invalidPublicKey) }
    }

    func testOutOfTurnAndShortMessages() throws {
        var initiator = NNpsk0Handshake(role: .initiator, prologue: [], psk: Key32())
        XCTAssertThrowsError(try initiator.readMessage([UInt8](repeating: 0, count: 48))) { XCTAssertEqual($0 as? NoiseError, .wrongState) }
        XCTAssertThrowsError(try initiator.split()) { XCTAssertEqual($0 as? NoiseError, .wrongState) }
        var responder = NNpsk0Handshake(role: .responder, prologue: [], psk: Key32())
        XCTAssertThrowsError(try responder.writeMessage(payload: [])) { XCTAssertEqual($0 as? NoiseError, .wrongState) }
        XCTAssertThrowsError(try responder.readMessage([UInt8](repeating: 0, count: 47))) { XCTAssertEqual($0 as? NoiseError, .messageTooShort(47)) }
        XCTAssertThrowsError(try initiator.writeMessage(payload: [UInt8](repeating: 0, count: 65535 - 48 + 1))) {
            XCTAssertEqual($0 as? NoiseError, .messageTooLarge(65536))
        }
    }
}

final class CipherStateTests: XCTestCase {
    func testNonceIncrementsOnlyOnSuccess() throws {
        let key = Key32.random()
        var send = CipherState(key: key), recv = CipherState(key: key)
        let c0 = try send.encrypt([1, 2, 3])
        XCTAssertEqual(send.nonce, 1)
        var tampered = c0
        tampered[0] ^= 1
        XCTAssertThrowsError(try recv.decrypt(tampered)) { XCTAssertEqual($0 as? NoiseError, .decryptFailed) }
        XCTAssertEqual(recv.nonce, 0, "failed decryption must not advance the nonce")
        XCTAssertEqual(try recv.decrypt(c0), [1, 2, 3])
        XCTAssertEqual(recv.nonce, 1)
        // Replaying the same ciphertext fails: the receiver moved on.
        XCTAssertThrowsError(try recv.decrypt(c0))
    }

    func testReservedNonceRefused() throws {
        let key = Key32.random()
        var send = CipherState(key: key), recv = CipherState(key: key)
        send.setNonce(UInt64.max - 1)
        recv.setNonce(UInt64.max - 1)
        let last = try send.encrypt([7])
        XCTAssertEqual(try recv.decrypt(last), [7])
        XCTAssertEqual(send.nonce, UInt64.max)
        XCTAssertThrowsError(try send.encrypt([8])) { XCTAssertEqual($0 as? NoiseError, .nonceExhausted) }
        XCTAssertThrowsError(try recv.decrypt(last)) { XCTAssertEqual($0 as? NoiseError, .nonceExhausted) }
    }

    func testNoKeyPassesThrough() throws {
        var c = CipherState()
        XCTAssertEqual(try c.encrypt([1, 2]), [1, 2])
        XCTAssertEqual(try c.decrypt([1, 2]), [1, 2])
        XCTAssertEqual(c.nonce, 0)
    }

    func testShortCiphertextFails() throws {
        var c = CipherState(key: Key32.random())
        XCTAssertThrowsError(try c.decrypt([UInt8](repeating: 0, count: 15))) { XCTAssertEqual($0 as? NoiseError, .decryptFailed) }
    }
}
