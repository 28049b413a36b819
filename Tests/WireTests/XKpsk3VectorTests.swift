// The published Noise_XKpsk3_25519_ChaChaPoly_SHA256 vector (cacophony set,
// Fixtures/noise-xkpsk3.json) must reproduce byte for byte: all three
// handshake messages, the handshake hash and every transport message, with
// the vector's static keys and ephemerals injected. Then the properties the
// protocol relies on: a wrong collector key, a wrong PSK and a replayed
// message 1 all fail, and the responder learns the initiator's key.
import Foundation
import XCTest
@testable import Wire

final class XKpsk3VectorTests: XCTestCase {
    struct Vector {
        let prologue: [UInt8]
        let psk: Key32
        let initStatic: StaticKeyPair
        let respStatic: StaticKeyPair
        let initRemoteStatic: Key32
        let initEphemeral: Key32
        let respEphemeral: Key32
        let handshakeHash: [UInt8]
        let messages: [(payload: [UInt8], ciphertext: [UInt8])]
    }

    func loadVectors() throws -> [Vector] {
        let json = try JSONSerialization.jsonObject(with: Fixtures.data("noise-xkpsk3.json")) as! [String: Any]
        return (json["vectors"] as! [[String: Any]]).map { v in
            XCTAssertEqual(v["protocol_name"] as? String, NoiseHandshake.protocolName)
            XCTAssertEqual(v["init_prologue"] as? String, v["resp_prologue"] as? String)
            XCTAssertEqual(v["init_psks"] as? [String], v["resp_psks"] as? [String])
            func key(_ name: String) -> Key32 { Key32(bytes: Hex.decode(v[name] as! String))! }
            return Vector(
                prologue: Hex.decode(v["init_prologue"] as! String),
                psk: Key32(bytes: Hex.decode((v["init_psks"] as! [String])[0]))!,
                initStatic: StaticKeyPair(secret: key("init_static")),
                respStatic: StaticKeyPair(secret: key("resp_static")),
                initRemoteStatic: key("init_remote_static"),
                initEphemeral: key("init_ephemeral"),
                respEphemeral: key("resp_ephemeral"),
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
            XCTAssertEqual(v.respStatic.publicKey, v.initRemoteStatic, "the vector's pinned key is the responder's")
            var initiator = NoiseHandshake(role: .initiator, prologue: v.prologue, psk: v.psk, staticKey: v.initStatic,
                                           remoteStatic: v.initRemoteStatic, ephemeralSecret: v.initEphemeral)
            var responder = NoiseHandshake(role: .responder, prologue: v.prologue, psk: Key32(), staticKey: v.respStatic,
                                           remoteStatic: Key32(), ephemeralSecret: v.respEphemeral)

            let m1 = try initiator.writeMessage(payload: v.messages[0].payload)
            XCTAssertEqual(Hex.encode(m1), Hex.encode(v.messages[0].ciphertext), "message 1")
            XCTAssertEqual(try responder.readMessage(m1), v.messages[0].payload)

            let m2 = try responder.writeMessage(payload: v.messages[1].payload)
            XCTAssertEqual(Hex.encode(m2), Hex.encode(v.messages[1].ciphertext), "message 2")
            XCTAssertEqual(try initiator.readMessage(m2), v.messages[1].payload)

            let m3 = try initiator.writeMessage(payload: v.messages[2].payload)
            XCTAssertEqual(Hex.encode(m3), Hex.encode(v.messages[2].ciphertext), "message 3")
            // The responder tries a wrong key first, as a collector does with
            // a project's several keys.
            let (index, payload) = try responder.readMessage3(m3, psks: [Key32.random(), v.psk])
            XCTAssertEqual(index, 1)
            XCTAssertEqual(payload, v.messages[2].payload)
            XCTAssertEqual(responder.remoteStatic, v.initStatic.publicKey, "the responder learns the initiator's static key")

            XCTAssertTrue(initiator.isComplete && responder.isComplete)
            XCTAssertEqual(Hex.encode(initiator.handshakeHash.bytes), Hex.encode(v.handshakeHash), "handshake hash")
            XCTAssertEqual(initiator.handshakeHash, responder.handshakeHash)

            var (iSend, iRecv) = try initiator.split()
            var (rSend, rRecv) = try responder.split()
            for (i, m) in v.messages.enumerated().dropFirst(3) {
                // Transport messages continue the alternation: 3 and 5 are
                // responder → initiator, 4 initiator → responder.
                let fromInitiator = i % 2 == 0
                let ct = fromInitiator ? try iSend.encrypt(m.payload) : try rSend.encrypt(m.payload)
                XCTAssertEqual(Hex.encode(ct), Hex.encode(m.ciphertext), "transport message \(i)")
                let pt = fromInitiator ? try rRecv.decrypt(ct) : try iRecv.decrypt(ct)
                XCTAssertEqual(pt, m.payload, "transport message \(i) opens")
            }
        }
    }

    let prologue: [UInt8] = Array("VGL\u{2}\u{1}a".utf8)

    func testImpostorCollectorCannotReadMessage1() throws {
        // The agent pins the real collector's key; a responder holding
        // another static key fails on message 1 (es differs).
        let real = StaticKeyPair.generate(), impostor = StaticKeyPair.generate()
        var initiator = NoiseHandshake(initiatorPrologue: prologue, psk: Key32.random(), staticKey: .generate(), collectorKey: real.publicKey)
        var responder = NoiseHandshake(responderPrologue: prologue, staticKey: impostor)
        let m1 = try initiator.writeMessage(payload: [])
        XCTAssertThrowsError(try responder.readMessage(m1)) { XCTAssertEqual($0 as? NoiseError, .decryptFailed) }
    }

    func testWrongPSKFailsMessage3AndReplayedMessage1GoesNowhere() throws {
        let collector = StaticKeyPair.generate()
        let psk = Key32.random()
        var initiator = NoiseHandshake(initiatorPrologue: prologue, psk: psk, staticKey: .generate(), collectorKey: collector.publicKey)
        let m1 = try initiator.writeMessage(payload: [])
        // A replay of message 1 earns a message 2 under a fresh responder
        // ephemeral; the original initiator's state does not fit it.
        var replayed = NoiseHandshake(responderPrologue: prologue, staticKey: collector)
        _ = try replayed.readMessage(m1)
        let m2replay = try replayed.writeMessage(payload: [])
        var real = NoiseHandshake(responderPrologue: prologue, staticKey: collector)
        _ = try real.readMessage(m1)
        let m2 = try real.writeMessage(payload: [])
        XCTAssertNotEqual(m2, m2replay)
        _ = try initiator.readMessage(m2)
        let m3 = try initiator.writeMessage(payload: [1, 2, 3])
        // The replaying responder cannot open the real message 3 …
        XCTAssertThrowsError(try replayed.readMessage3(m3, psks: [psk])) { XCTAssertEqual($0 as? NoiseError, .decryptFailed) }
        // … and the real one only under the right PSK.
        var copy = real
        XCTAssertThrowsError(try copy.readMessage3(m3, psks: [Key32.random()])) { XCTAssertEqual($0 as? NoiseError, .decryptFailed) }
        XCTAssertEqual(try real.readMessage3(m3, psks: [psk]).payload, [1, 2, 3])
    }

    func testOutOfTurnAndShortMessages() throws {
        let collector = StaticKeyPair.generate()
        var initiator = NoiseHandshake(initiatorPrologue: [], psk: Key32(), staticKey: .generate(), collectorKey: collector.publicKey)
        XCTAssertThrowsError(try initiator.readMessage([UInt8](repeating: 0, count: 48))) { XCTAssertEqual($0 as? NoiseError, .wrongState) }
        XCTAssertThrowsError(try initiator.split()) { XCTAssertEqual($0 as? NoiseError, .wrongState) }
        var responder = NoiseHandshake(responderPrologue: [], staticKey: collector)
        XCTAssertThrowsError(try responder.writeMessage(payload: [])) { XCTAssertEqual($0 as? NoiseError, .wrongState) }
        XCTAssertThrowsError(try responder.readMessage([UInt8](repeating: 0, count: 47))) { XCTAssertEqual($0 as? NoiseError, .messageTooShort(47)) }
        XCTAssertThrowsError(try initiator.writeMessage(payload: [UInt8](repeating: 0, count: 65535 - 48 + 1))) {
            XCTAssertEqual($0 as? NoiseError, .messageTooLarge(65536))
        }
    }

    func testLowOrderEphemeralRejected() throws {
        // Message 1 with the all-zero point as e: DH(s, re) is zero.
        var responder = NoiseHandshake(responderPrologue: [], staticKey: .generate())
        XCTAssertThrowsError(try responder.readMessage([UInt8](repeating: 0, count: 48))) {
            XCTAssertEqual($0 as? NoiseError, .invalidPublicKey)
        }
    }
}
