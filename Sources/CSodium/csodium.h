// libsodium from Debian's libsodium-dev (X25519, ChaCha20-Poly1305 IETF,
// SHA-256, HMAC-SHA-256, randombytes). Only the Wire module imports it.
// Linking is declared on the Wire target (Package.swift), so VIGIL_STATIC=1
// can pick libsodium.a.
#include <sodium.h>
