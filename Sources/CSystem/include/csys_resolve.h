/*
 * csys_resolve.h — asynchronous host name lookup for loop code.
 *
 * getaddrinfo(3) blocks; getaddrinfo_a(3) (a _GNU_SOURCE call, hence here)
 * runs the lookup on glibc's resolver thread instead. When a lookup ends,
 * glibc's notification thread writes the request pointer (8 bytes, atomic
 * on a pipe) to `notify_fd`; the loop watches the read end, reads pointers
 * and collects each result with csys_resolve_result. The write end should
 * be blocking so no notification is lost.
 *
 * Ownership: the caller owns a started request and frees it with
 * csys_resolve_free once its pointer came back through the pipe, or at once
 * when csys_resolve_cancel says glibc dropped it before it ran (glibc sends
 * no notification for those).
 */
#ifndef CSYS_RESOLVE_H
#define CSYS_RESOLVE_H

#include <netdb.h>

struct csys_resolve;

/* Starts resolving `host` for TCP (AI_ADDRCONFIG, any family). Returns NULL
 * with the getaddrinfo_a error in *error (EAI_AGAIN, EAI_MEMORY, EAI_SYSTEM). */
struct csys_resolve *csys_resolve_start(const char *host, int notify_fd, int *error);

/* After notification: 0 and the list in *res (owned by the request), or the
 * EAI_* code (gai_strerror names it; EAI_CANCELED after a cancel). */
int csys_resolve_result(struct csys_resolve *r, const struct addrinfo **res);

/* gai_cancel: returns 1 when the lookup was dropped before it ran (no
 * notification will come: free it now), 0 when it is running or done (its
 * notification comes through the pipe: free it then). */
int csys_resolve_cancel(struct csys_resolve *r);

/* Frees the result list and the request. */
void csys_resolve_free(struct csys_resolve *r);

#endif
