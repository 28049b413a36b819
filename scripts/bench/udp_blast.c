/*
 * udp_blast.c — a paced sendmmsg sender of single-record datagrams for the
 * benchmark scripts. Every datagram of a run has the same length:
 *   ipa     one version-0 IPA record (scripts/bench-agent.sh, load.sh, soak.sh):
 *               0<TAB>GET<TAB>api.example.com<TAB>/v1/users/00012345<TAB>12.5<LF>
 *           (the user id varies), so the agent parses, matches and aggregates
 *           real records;
 *   statsd  its StatsD equivalent for collectd's statsd plugin (load.sh):
 *               api.get-user:12.5|ms<LF>
 *   statsd:K  K such lines per datagram, as batching StatsD clients send
 *           (scripts/bench-statsd.sh);
 *   raw:N   N bytes of filler (scripts/bench-reactor.sh: the receiver's own
 *           cost, no parsing).
 * The duration cycles through 0.5 … 99.5 ms in ipa and statsd.
 *
 *   udp_blast ipa|statsd|statsd:K|raw:N PORT SECONDS RATE [BATCH] [GSO_SEGMENTS] [COUNT]
 *
 * Stops after SECONDS, or once COUNT datagrams are sent when COUNT > 0.
 * RATE is datagrams per second (0: as fast as the kernel takes them). With
 * GSO_SEGMENTS > 1 each message is a UDP GSO super-datagram the kernel
 * splits into that many datagrams (cheaper for the sender; the receiver
 * sees ordinary datagrams). Prints one key=value line: sender, sent,
 * seconds, rate, errors.
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int statsd;        /* the record kind: 0 ipa, 1 statsd */
static int raw;           /* 1: raw:N filler records */
static int rec_len;       /* bytes of every record of the run */
static int lines = 1;     /* statsd:K: lines per record */

/* Writes record `n` (exactly rec_len bytes) at p. */
static void record(char *p, uint64_t n) {
    if (raw) { memset(p, 'x', rec_len); p[0] = (char)n; return; }
    if (statsd && lines > 1) {
        char one[32];
        for (int i = 0; i < lines; i++) {
            snprintf(one, sizeof one, "api.get-user:%02u.5|ms\n", (unsigned)((n * lines + i) % 100));
            memcpy(p + 21 * i, one, 21);
        }
        return;
    }
    char buf[64];
    int len = statsd
        ? snprintf(buf, sizeof buf, "api.get-user:%02u.5|ms\n", (unsigned)(n % 100))
        : snprintf(buf, sizeof buf, "0\tGET\tapi.example.com\t/v1/users/%08llu\t%02u.5\n",
                   (unsigned long long)(n % 100000000ull), (unsigned)(n % 100));
    if (len != rec_len) { fprintf(stderr, "record length %d != %d\n", len, rec_len); exit(1); }
    memcpy(p, buf, rec_len);
}

int main(int argc, char **argv) {
    raw = argc >= 5 && strncmp(argv[1], "raw:", 4) == 0;
    int statsd_k = argc >= 5 && strncmp(argv[1], "statsd:", 7) == 0;
    if (argc < 5 || (!raw && !statsd_k && strcmp(argv[1], "ipa") != 0 && strcmp(argv[1], "statsd") != 0)) {
        fprintf(stderr, "usage: %s ipa|statsd|statsd:K|raw:SIZE PORT SECONDS RATE [BATCH] [GSO_SEGMENTS] [COUNT]\n", argv[0]);
        return 2;
    }
    statsd = statsd_k || strcmp(argv[1], "statsd") == 0;
    if (statsd_k) { lines = atoi(argv[1] + 7); if (lines < 1 || lines > 3000) { fprintf(stderr, "bad K: %s\n", argv[1]); return 2; } }
    rec_len = raw ? atoi(argv[1] + 4) : statsd ? 21 * lines : 46;
    if (rec_len < 1 || rec_len > 65507) { fprintf(stderr, "bad size: %s\n", argv[1]); return 2; }
    const char *kind = raw ? "raw" : statsd ? "statsd" : "ipa";
    argv++, argc--;
    int port = atoi(argv[1]);
    double seconds = atof(argv[2]);
    double rate = atof(argv[3]);
    int batch = argc > 4 ? atoi(argv[4]) : 32;
    int segs = argc > 5 ? atoi(argv[5]) : 1;
    uint64_t count = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
    if (segs < 1) segs = 1;

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("connect"); return 1; }
    int size = rec_len;
    if (segs > 1 && setsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, sizeof size) < 0) { perror("UDP_SEGMENT"); return 1; }
    int sndbuf = 64 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);

    size_t msgsize = (size_t)rec_len * segs;
    char *buf = calloc(batch, msgsize);
    struct mmsghdr *msgs = calloc(batch, sizeof *msgs);
    struct iovec *iov = calloc(batch, sizeof *iov);
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = buf + i * msgsize;
        iov[i].iov_len = msgsize;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t sent = 0, seq = 0, errors = 0;
    double t0 = mono(), end = t0 + seconds;
    for (;;) {
        double now = mono();
        if (now >= end || (count > 0 && sent >= count)) break;
        if (rate > 0) {
            /* Pace per batch: wait until this batch is due. */
            double due = t0 + (double)sent / rate;
            if (due > now) {
                if (due - now > 0.0002) {
                    struct timespec ts = { 0, (long)((due - now - 0.0001) * 1e9) };
                    nanosleep(&ts, NULL);
                }
                continue;
            }
        }
        for (int i = 0; i < batch * segs; i++) record(buf + (size_t)i * rec_len, seq++);
        int want = batch;
        if (count > 0 && count - sent < (uint64_t)batch * segs) want = (int)((count - sent + segs - 1) / segs);
        int n = sendmmsg(fd, msgs, want, 0);
        if (n < 0) { if (errno != EINTR) errors++; continue; }
        sent += (uint64_t)n * segs;
    }
    double took = mono() - t0;
    printf("sender=%s sent=%llu seconds=%.3f rate=%.0f errors=%llu\n", kind, (unsigned long long)sent, took, sent / took,
           (unsigned long long)errors);
    return 0;
}
