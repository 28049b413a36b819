// libsodium from Debian's libsodium-dev (X25519, ChaCha20-Poly1305 IETF,
// SHA-256, HMAC-SHA-256, randombytes). Only the Wire module imports it.
#include <sodium.h>
