/*
 * csystem.h — Linux socket calls that Glibc's Swift overlay hides behind
 * _GNU_SOURCE (accept4, pipe2, recvmmsg, sendmmsg) and the CMSG_* macros,
 * as plain functions (the first four are defined in csystem.c). Only Reactor/System/Syscalls.swift and the UDP code
 * use this module, and vigil-notify (the parent-death signal).
 */
#ifndef CSYSTEM_H
#define CSYSTEM_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdint.h>
#include <string.h>
#include <malloc.h>   /* mallinfo2, malloc_usable_size: heap figures for self-monitoring */
#include <linux/sock_diag.h>

struct csys_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/* Out of line (csystem.c defines _GNU_SOURCE; a header must not, or the
 * module would disagree with Glibc's about struct layouts). */
int csys_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int csys_pipe2(int fds[2], int flags);
int csys_recvmmsg(int fd, struct csys_mmsghdr *v, unsigned int n, int flags);
int csys_sendmmsg(int fd, struct csys_mmsghdr *v, unsigned int n, int flags);
/* The calling thread's kernel id (gettid(2)). */
int csys_gettid(void);

/* Asks for `sig` when the parent dies (prctl(2) PR_SET_PDEATHSIG, which is
 * variadic, so Swift cannot call it): vigil-notify dies with its collector. */
int csys_set_parent_death_signal(int sig);

/* Names the calling thread (pthread_setname_np(3), at most 15 bytes shown by ps and top). */
void csys_set_thread_name(const char *name);

static const int CSYS_SO_RXQ_OVFL = SO_RXQ_OVFL;
static const int CSYS_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int CSYS_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int CSYS_MSG_NOSIGNAL = MSG_NOSIGNAL;
static const int CSYS_MSG_DONTWAIT = MSG_DONTWAIT;
static const int CSYS_SO_REUSEPORT = SO_REUSEPORT;
static const int CSYS_TCP_NODELAY = TCP_NODELAY;
/* Bind a client socket's address only; connect(2) picks the port (ip(7)). */
static const int CSYS_IP_BIND_ADDRESS_NO_PORT = IP_BIND_ADDRESS_NO_PORT;
static const int CSYS_SO_RCVBUFFORCE = SO_RCVBUFFORCE;
static const int CSYS_MSG_TRUNC = MSG_TRUNC;
static const int CSYS_MSG_CTRUNC = MSG_CTRUNC;
/* getsockopt(SO_MEMINFO) fills u32[SK_MEMINFO_VARS]; [SK_MEMINFO_DROPS] is
 * the same sk_drops counter that SO_RXQ_OVFL reports per datagram. */
static const int CSYS_SO_MEMINFO = SO_MEMINFO;
static const int CSYS_SK_MEMINFO_VARS = SK_MEMINFO_VARS;
static const int CSYS_SK_MEMINFO_DROPS = SK_MEMINFO_DROPS;

/* rtnetlink (csystem.c: the kernel headers stay out of this module, whose
 * socket names must agree with Glibc's). A NETLINK_ROUTE socket bound to
 * csys_rtmgrp_interfaces (RTMGRP_LINK | RTMGRP_IPV4_IFADDR |
 * RTMGRP_IPV6_IFADDR) is told of every change of a link (state, flags) and
 * of every IPv4/IPv6 address. csys_bind_netlink binds a netlink socket to
 * multicast `groups` (the kernel picks the port id). */
static const int CSYS_AF_NETLINK = AF_NETLINK;
extern const int csys_netlink_route;
extern const uint32_t csys_rtmgrp_interfaces;
int csys_bind_netlink(int fd, uint32_t groups);

/* CMSG_* walk over a received control buffer. */
static inline struct cmsghdr *csys_cmsg_firsthdr(struct msghdr *m) { return CMSG_FIRSTHDR(m); }
static inline struct cmsghdr *csys_cmsg_nxthdr(struct msghdr *m, struct cmsghdr *c) { return CMSG_NXTHDR(m, c); }
static inline unsigned char *csys_cmsg_data(struct cmsghdr *c) { return CMSG_DATA(c); }
static inline size_t csys_cmsg_space(size_t n) { return CMSG_SPACE(n); }

#endif
