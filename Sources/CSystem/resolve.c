/* Asynchronous lookups with getaddrinfo_a; see include/csys_resolve.h. */
#define _GNU_SOURCE 1
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include "csys_resolve.h"

struct csys_resolve {
    struct gaicb cb;
    struct addrinfo hints;
    struct sigevent sev;
    int notify_fd;
    char host[];
};

/* Runs on glibc's notification thread: hand the request back to the loop. */
static void notify(union sigval v) {
    struct csys_resolve *r = v.sival_ptr;
    ssize_t n;
    do { n = write(r->notify_fd, &r, sizeof r); } while (n < 0 && errno == EINTR);
}

struct csys_resolve *csys_resolve_start(const char *host, int notify_fd, int *error) {
    size_t len = strlen(host);
    struct csys_resolve *r = calloc(1, sizeof *r + len + 1);
    if (!r) { *error = EAI_MEMORY; return NULL; }
    memcpy(r->host, host, len + 1);
    r->notify_fd = notify_fd;
    r->hints.ai_family = AF_UNSPEC;
    r->hints.ai_socktype = SOCK_STREAM;
    r->hints.ai_flags = AI_ADDRCONFIG;
    r->cb.ar_name = r->host;
    r->cb.ar_request = &r->hints;
    r->sev.sigev_notify = SIGEV_THREAD;
    r->sev.sigev_notify_function = notify;
    r->sev.sigev_value.sival_ptr = r;
    struct gaicb *list[1] = { &r->cb };
    int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &r->sev);
    if (rc != 0) { free(r); *error = rc; return NULL; }
    return r;
}

int csys_resolve_result(struct csys_resolve *r, const struct addrinfo **res) {
    int rc = gai_error(&r->cb);
    *res = rc == 0 ? r->cb.ar_result : NULL;
    return rc;
}

int csys_resolve_cancel(struct csys_resolve *r) { return gai_cancel(&r->cb) == EAI_CANCELED; }

void csys_resolve_free(struct csys_resolve *r) {
    if (r->cb.ar_result) freeaddrinfo(r->cb.ar_result);
    free(r);
}
