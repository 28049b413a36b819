// libsodium for static builds (VIGIL_STATIC=1): the same module as
// Sources/CSodium, as a C target so Package.swift can link libsodium.a
// instead of the system-library module map's `link "sodium"`.
#include <sodium.h>
