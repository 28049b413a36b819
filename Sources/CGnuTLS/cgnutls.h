// GnuTLS's C interface from Debian's libgnutls28-dev: the TLS client of the
// remote-write sender (https:// receivers). libmicrohttpd already links
// libgnutls into the collector, so this adds no runtime library. Only the
// RemoteWrite module imports it.
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

// GNUTLS_NONBLOCK is both an enum constant and a macro, which Swift cannot
// import unambiguously: the client's init flags as one value.
static inline unsigned int cgnutls_client_nonblocking_flags(void) {
    return GNUTLS_CLIENT | GNUTLS_NONBLOCK;
}
