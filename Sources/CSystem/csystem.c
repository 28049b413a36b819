/* The _GNU_SOURCE calls declared in include/csystem.h, and the rtnetlink
 * values (kept out of the header). */
#define _GNU_SOURCE 1
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>
#include <stddef.h>
#include <pthread.h>
#include <string.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/prctl.h>
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

void csys_set_thread_name(const char *name) {
    char short_name[16];
    strncpy(short_name, name, sizeof short_name - 1);
    short_name[sizeof short_name - 1] = 0;
    pthread_setname_np(pthread_self(), short_name);
}

int csys_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }

const int csys_netlink_route = NETLINK_ROUTE;
const uint32_t csys_rtmgrp_interfaces = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;

int csys_bind_netlink(int fd, uint32_t groups) {
    struct sockaddr_nl sa;
    memset(&sa, 0, sizeof sa);
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = groups;
    return bind(fd, (struct sockaddr *)&sa, sizeof sa);
}
