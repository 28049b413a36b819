/*
 * udp_recv.c — the reference receiver for scripts/bench-reactor.sh: the
 * practical limit of an event-driven recvmmsg receiver, written the way an
 * expert would in C. It does the same per-datagram work as the Reactor's
 * UDPReceiver in reactor-bench (SO_RXQ_OVFL enabled and parsed, MSG_TRUNC
 * checked, headers re-armed, first 8 bytes of each datagram read), with the
 * same batch size, buffer slot size and receive buffer, over epoll.
 *
 *   udp_recv PORT [BATCH] [MAXSIZE] [RCVBUF] [IDLE_MS] [MAX_S]
 *
 * Measures from the first datagram to the last (stops after IDLE_MS without
 * any, or MAX_S seconds) and prints one line of key=value figures; cpu_s is
 * the getrusage(RUSAGE_SELF) user+system time over that window.
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* User and system CPU seconds of this process (getrusage). */
static void cpu(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [BATCH] [MAXSIZE] [RCVBUF] [IDLE_MS] [MAX_S]\n", argv[0]); return 2; }
    int port = atoi(argv[1]);
    int batch = argc > 2 ? atoi(argv[2]) : 64;
    int maxsize = argc > 3 ? atoi(argv[3]) : 2048;
    int rcvbuf = argc > 4 ? atoi(argv[4]) : 8 << 20;
    int idle_ms = argc > 5 ? atoi(argv[5]) : 300;
    double max_s = argc > 6 ? atof(argv[6]) : 30;

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); return 1; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); return 1; }

    /* Same layout as UDPReceiver: one slab, slots a cache line off a power of two. */
    size_t stride = (maxsize + 63) & ~63;
    if ((stride & (stride - 1)) == 0 || stride % 4096 == 0) stride += 64;
    size_t cspace = CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(16);
    char *slab = aligned_alloc(4096, batch * stride);
    char *ctl = calloc(batch, cspace);
    struct mmsghdr *msgs = calloc(batch, sizeof *msgs);
    struct iovec *iov = calloc(batch, sizeof *iov);
    struct sockaddr_storage *names = calloc(batch, sizeof *names);
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = slab + i * stride;
        iov[i].iov_len = maxsize;
        msgs[i].msg_hdr.msg_name = &names[i];
        msgs[i].msg_hdr.msg_namelen = sizeof names[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_control = ctl + i * cspace;
        msgs[i].msg_hdr.msg_controllen = cspace;
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    printf("ready port=%d\n", port);
    fflush(stdout);

    uint64_t dgrams = 0, bytes = 0, trunc = 0, wakeups = 0, x = 0;
    uint32_t drops = 0;
    double t0 = 0, tlast = 0, u0 = 0, s0 = 0, u1, s1;
    for (;;) {
        struct epoll_event out;
        int r = epoll_wait(ep, &out, 1, dgrams ? idle_ms : 60000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        wakeups++;
        for (;;) {
            int n = recvmmsg(fd, msgs, batch, MSG_DONTWAIT, NULL);
            if (n < 0) { if (errno == EINTR) continue; break; }
            if (!dgrams) { t0 = mono(); cpu(&u0, &s0); }
            for (int i = 0; i < n; i++) {
                struct msghdr *h = &msgs[i].msg_hdr;
                if (h->msg_controllen) {
                    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) memcpy(&drops, CMSG_DATA(c), 4);
                }
                h->msg_namelen = sizeof names[i];
                h->msg_controllen = cspace;
                if (h->msg_flags & MSG_TRUNC) { trunc++; continue; }
                dgrams++;
                bytes += msgs[i].msg_len;
                uint64_t v; memcpy(&v, h->msg_iov->iov_base, 8); x ^= v;
            }
            if (n < batch) break;
        }
        tlast = mono();
        if (dgrams && tlast - t0 > max_s) break;
    }
    cpu(&u1, &s1);
    double secs = tlast - t0;
    printf("receiver=c datagrams=%llu bytes=%llu seconds=%.4f cpu_s=%.4f user_s=%.4f sys_s=%.4f wakeups=%llu kernel_drops=%u truncated=%llu x=%llx\n",
           (unsigned long long)dgrams, (unsigned long long)bytes, secs, (u1 - u0) + (s1 - s0), u1 - u0, s1 - s0, (unsigned long long)wakeups, drops,
           (unsigned long long)trunc, (unsigned long long)x);
    return 0;
}
