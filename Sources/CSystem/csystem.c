/* The _GNU_SOURCE calls declared in include/csystem.h. */
#define _GNU_SOURCE 1
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>
#include <stddef.h>
#include "csystem.h"

_Static_assert(sizeof(struct csys_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(struct csys_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

int csys_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags) { return accept4(fd, sa, len, flags); }
int csys_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int csys_recvmmsg(int fd, struct csys_mmsghdr *v, unsigned int n, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)v, n, flags, NULL);
}
int csys_sendmmsg(int fd, struct csys_mmsghdr *v, unsigned int n, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)v, n, flags);
}
int csys_gettid(void) { return (int)gettid(); }
