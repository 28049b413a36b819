/* x25519.c: X25519 providers on this machine, timed in C (scripts/bench-x25519.sh).
 *
 * For each library it times key generation (the base-point multiplication a
 * fresh ephemeral key needs) and DH, and then "one responder handshake's
 * worth": one key generation and three DH operations, which is what a
 * Noise_XKpsk3 responder does (docs/PROTOCOL.md §4). OpenSSL is timed the way
 * a handshake would have to use it, paying for the EVP objects every time:
 *   openssl-naive   every DH builds the private key object from raw bytes
 *                   (EVP_PKEY_new_raw_private_key derives the public key on
 *                   creation: a hidden base-point multiplication) and the peer's;
 *   openssl-cached  the private key object is built once (key generation for an
 *                   ephemeral, start-up for the static key) and reused; each DH
 *                   builds only the peer's public key object and a derive context;
 *   openssl-bare    a bound: EVP_PKEY_derive alone on a prepared context;
 *   nettle+openssl  keys from nettle's fixed-base multiplication; each DH builds the
 *                   private key object from the secret and its public key
 *                   (EVP_PKEY_fromdata: no hidden multiplication), the peer's, and
 *                   a derive context: what a stateless DH call would pay;
 *   nettle+sodium   nettle's key generation, libsodium's DH.
 * Rates are per second of CPU time (see now()).
 * Usage: x25519 SECONDS [provider ...]
 */
#include <gcrypt.h>
#include <nettle/curve25519.h>
#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this thread, not wall time: on a machine shared with other
 * work a pinned process still waits for its core, and `openssl speed` counts
 * CPU time too, so the figures compare with its. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static unsigned char sk[32], pk[32], peer[32], out[32];

/* A fresh secret for each key generation, except while checking agreement. */
static int checking;
static void fresh(void) { if (!checking) randombytes_buf(sk, 32); }

static void die(const char *what) { fprintf(stderr, "%s failed\n", what); ERR_print_errors_fp(stderr); exit(1); }

/* ---- libsodium */
static void sodium_keygen(void) { fresh(); crypto_scalarmult_curve25519_base(pk, sk); }
static void sodium_dh(void) { if (crypto_scalarmult_curve25519(out, sk, peer) != 0) die("sodium dh"); }

/* ---- nettle (GnuTLS's crypto library) */
static void nettle_keygen(void) { fresh(); nettle_curve25519_mul_g(pk, sk); }
static void nettle_dh(void) { nettle_curve25519_mul(out, sk, peer); }

/* ---- libgcrypt */
static void gcry_keygen(void) {
    fresh();
    unsigned char base[32] = {9};
    if (gcry_ecc_mul_point(GCRY_ECC_CURVE25519, pk, sk, base)) die("gcry keygen");
}
static void gcry_dh(void) { if (gcry_ecc_mul_point(GCRY_ECC_CURVE25519, out, sk, peer)) die("gcry dh"); }

/* ---- OpenSSL 3 EVP */
static EVP_PKEY *cachedKey;

static void openssl_derive(EVP_PKEY *priv) {
    EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    if (!pub) die("new_raw_public_key");
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);
    size_t len = 32;
    if (!ctx || EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer_ex(ctx, pub, 0) <= 0 ||
        EVP_PKEY_derive(ctx, out, &len) <= 0)
        die("derive");
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pub);
}
static void openssl_keygen(void) {
    fresh();
    EVP_PKEY_free(cachedKey);
    cachedKey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, 32);
    size_t len = 32;
    if (!cachedKey || EVP_PKEY_get_raw_public_key(cachedKey, pk, &len) <= 0) die("new_raw_private_key");
}
static void openssl_naive_dh(void) {
    EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, 32);
    if (!priv) die("new_raw_private_key");
    openssl_derive(priv);
    EVP_PKEY_free(priv);
}
static void openssl_cached_dh(void) { openssl_derive(cachedKey); }

/* A bound, not a usable provider: EVP_PKEY_derive alone on a context whose
 * key and peer were set up beforehand (rebuilt only after a key generation),
 * as `openssl speed ecdhx25519` times it. */
static EVP_PKEY_CTX *bareCtx;
static EVP_PKEY *bareFor;
static void openssl_bare_dh(void) {
    if (checking || bareFor != cachedKey) {
        EVP_PKEY_CTX_free(bareCtx);
        EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
        bareCtx = EVP_PKEY_CTX_new(cachedKey, NULL);
        if (!pub || !bareCtx || EVP_PKEY_derive_init(bareCtx) <= 0 || EVP_PKEY_derive_set_peer_ex(bareCtx, pub, 0) <= 0)
            die("bare context");
        EVP_PKEY_free(pub);
        bareFor = cachedKey;
    }
    size_t len = 32;
    if (EVP_PKEY_derive(bareCtx, out, &len) <= 0) die("derive");
}

/* The private key object built from the secret and its public key together
 * (EVP_PKEY_fromdata), which skips the hidden base-point multiplication; the
 * public key comes from nettle's fixed-base multiplication. */
static void openssl_fromdata_dh(void) {
    OSSL_PARAM params[3] = {
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, sk, 32),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pk, 32),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *priv = NULL;
    EVP_PKEY_CTX *fctx = EVP_PKEY_CTX_new_from_name(NULL, "X25519", NULL);
    if (!fctx || EVP_PKEY_fromdata_init(fctx) <= 0 || EVP_PKEY_fromdata(fctx, &priv, EVP_PKEY_KEYPAIR, params) <= 0)
        die("fromdata");
    EVP_PKEY_CTX_free(fctx);
    openssl_derive(priv);
    EVP_PKEY_free(priv);
}

struct provider { const char *name; void (*keygen)(void); void (*dh)(void); };
static const struct provider providers[] = {
    {"libsodium", sodium_keygen, sodium_dh},
    {"openssl-naive", openssl_keygen, openssl_naive_dh},
    {"openssl-cached", openssl_keygen, openssl_cached_dh},
    {"openssl-bare", openssl_keygen, openssl_bare_dh},
    {"nettle", nettle_keygen, nettle_dh},
    {"nettle+sodium", nettle_keygen, sodium_dh},
    {"nettle+openssl", nettle_keygen, openssl_fromdata_dh},
    {"libgcrypt", gcry_keygen, gcry_dh},
};

/* Runs `f` for about `seconds` after a short warm-up; returns operations/s. */
static double rate(void (*f)(void), double seconds) {
    for (int i = 0; i < 200; i++) f();
    long n = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 100; i++) f();
        n += 100;
    } while ((t = now()) - t0 < seconds);
    return n / (t - t0);
}

static void handshake(const struct provider *p) {
    p->keygen();
    p->dh(); p->dh(); p->dh();
}
static const struct provider *current;
static void handshakeCurrent(void) { handshake(current); }

/* Every provider must compute the same public keys and shared secrets as
 * libsodium, for random secrets and random peer bytes (high bit included). */
static void checkAgreement(int rounds) {
    size_t count = sizeof providers / sizeof providers[0];
    unsigned char wantPk[32], wantOut[32];
    checking = 1;
    for (int r = 0; r < rounds; r++) {
        randombytes_buf(sk, 32);
        randombytes_buf(peer, 32);
        sodium_keygen(); sodium_dh();
        memcpy(wantPk, pk, 32); memcpy(wantOut, out, 32);
        for (size_t i = 1; i < count; i++) {
            memset(pk, 0, 32); memset(out, 0, 32);
            providers[i].keygen(); providers[i].dh();
            if (memcmp(pk, wantPk, 32) || memcmp(out, wantOut, 32)) {
                fprintf(stderr, "%s disagrees with libsodium\n", providers[i].name);
                exit(1);
            }
        }
    }
    checking = 0;
    printf("# all providers agree with libsodium on %d random keys and peers\n", rounds);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2;
    if (sodium_init() < 0) die("sodium_init");
    if (!gcry_check_version(NULL)) die("gcry_check_version");
    gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    checkAgreement(1000);
    randombytes_buf(peer, 32);
    printf("%-15s %12s %12s %22s\n", "provider", "keygen/s", "dh/s", "keygen+3dh (per hs) /s");
    size_t count = sizeof providers / sizeof providers[0];
    int listed = argc > 2 ? argc - 2 : (int)count;   /* in the order given, so runs can alternate */
    for (int a = 0; a < listed; a++) {
        const struct provider *p = NULL;
        for (size_t i = 0; i < count; i++)
            if (argc <= 2 ? i == (size_t)a : strcmp(argv[a + 2], providers[i].name) == 0) p = &providers[i];
        if (!p) { fprintf(stderr, "unknown provider %s\n", argv[a + 2]); return 2; }
        p->keygen(); /* the cached OpenSSL key exists before its DH is timed */
        double kg = rate(p->keygen, seconds);
        double dh = rate(p->dh, seconds);
        current = p;
        double hs = rate(handshakeCurrent, seconds);
        printf("%-15s %12.0f %12.0f %22.0f\n", p->name, kg, dh, hs);
        fflush(stdout);
    }
    return 0;
}
