/*
 * udp_blast.c — a sendmmsg blaster for scripts/bench-reactor.sh: sends
 * SIZE-byte datagrams to 127.0.0.1:PORT in batches of BATCH for SECONDS,
 * as fast as the kernel takes them, then prints how many it sent.
 *
 *   udp_blast PORT SECONDS [SIZE] [BATCH] [GSO_SEGMENTS] [COUNT]
 *
 * Stops after SECONDS, or once COUNT datagrams are sent when COUNT > 0.
 *
 * With GSO_SEGMENTS > 1, each of the BATCH messages of a sendmmsg call is one
 * UDP GSO super-datagram (UDP_SEGMENT) that the kernel splits into that many
 * SIZE-byte datagrams before they reach the receiving socket: the receiver
 * sees ordinary datagrams, while the sender skips most of the per-datagram
 * route and IP work. That is what lets one sender core outrun one receiver.
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

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s PORT SECONDS [SIZE] [BATCH]\n", argv[0]); return 2; }
    int port = atoi(argv[1]);
    double seconds = atof(argv[2]);
    int size = argc > 3 ? atoi(argv[3]) : 64;
    int batch = argc > 4 ? atoi(argv[4]) : 64;
    int segs = argc > 5 ? atoi(argv[5]) : 1;
    if (size < 8) size = 8;
    if (segs < 1) segs = 1;
    uint64_t count = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("connect"); return 1; }
    if (segs > 1 && setsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, sizeof size) < 0) { perror("UDP_SEGMENT"); return 1; }
    int sndbuf = 64 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);

    size_t msgsize = (size_t)size * segs;
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
    double end = mono() + seconds;
    while (mono() < end && (count == 0 || sent < count)) {
        for (int k = 0; k < 16 && (count == 0 || sent < count); k++) {
            for (int i = 0; i < batch * segs; i++) memcpy(buf + (size_t)i * size, &seq, 8), seq++;
            int n = sendmmsg(fd, msgs, batch, 0);
            if (n < 0) { if (errno == EINTR) continue; errors++; continue; }  /* ECONNREFUSED before the receiver binds */
            sent += (uint64_t)n * segs;
        }
    }
    double took = mono() - (end - seconds);
    printf("sender=c sent=%llu seconds=%.3f rate=%.0f errors=%llu\n", (unsigned long long)sent, took, sent / took, (unsigned long long)errors);
    return 0;
}
