/*
 * cmhd.h — libmicrohttpd for Swift. MHD_start_daemon, MHD_get_daemon_info
 * and MHD_get_connection_info are variadic, which Swift cannot call; these
 * fixed-argument wrappers are the whole shim.
 */
#ifndef CMHD_H
#define CMHD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <microhttpd.h>

/* The URI log callback (MHD_OPTION_URI_LOG_CALLBACK): sees the request
 * target as sent (not unescaped, query included) before the access handler;
 * what it returns becomes the request's `con_cls`. */
typedef void *(*cmhd_uri_callback)(void *cls, const char *uri, struct MHD_Connection *connection);

/* What a daemon is started with besides its callbacks. */
struct cmhd_options {
    /* MHD_OPTION_CONNECTION_LIMIT: MHD's own bound (a backstop; the caller
     * counts and refuses in its accept-policy callback first). */
    unsigned int connection_limit;
    /* MHD_OPTION_CONNECTION_TIMEOUT: seconds of inactivity. */
    unsigned int timeout_seconds;
    /* MHD_OPTION_CONNECTION_MEMORY_LIMIT: the request line and headers must fit. */
    size_t connection_memory_limit;
    /* PEM text of the TLS key and certificate (MHD_USE_TLS with
     * MHD_OPTION_HTTPS_MEM_KEY/CERT); both NULL: plain HTTP. */
    const char *tls_key_pem;
    const char *tls_cert_pem;
};

/* Starts a daemon with no thread of its own (MHD_USE_EPOLL without an
 * internal polling thread, suspend/resume allowed) on `addr`. The caller
 * polls the epoll descriptor from its own loop and calls MHD_run.
 * `accept_policy` sees every accepted connection's address first
 * (MHD_AcceptPolicyCallback); `notify` is told when a connection starts and
 * closes (MHD_OPTION_NOTIFY_CONNECTION). */
struct MHD_Daemon *cmhd_start(const struct sockaddr *addr, int ipv6,
                              MHD_AccessHandlerCallback handler, void *handler_cls,
                              MHD_RequestCompletedCallback completed, void *completed_cls,
                              cmhd_uri_callback uri, void *uri_cls,
                              MHD_AcceptPolicyCallback accept_policy, void *accept_policy_cls,
                              MHD_NotifyConnectionCallback notify, void *notify_cls,
                              const struct cmhd_options *options);

/* The daemon's epoll descriptor (MHD_DAEMON_INFO_EPOLL_FD), -1 if none. */
int cmhd_epoll_fd(struct MHD_Daemon *d);

/* The bound port (MHD_DAEMON_INFO_BIND_PORT), for port-0 binds. */
uint16_t cmhd_bound_port(struct MHD_Daemon *d);

/* Connections currently open (MHD_DAEMON_INFO_CURRENT_CONNECTIONS). */
unsigned int cmhd_connection_count(struct MHD_Daemon *d);

/* A connection's socket (MHD_CONNECTION_INFO_CONNECTION_FD), -1 if unknown. */
int cmhd_connection_fd(struct MHD_Connection *c);

/* A connection's peer address (MHD_CONNECTION_INFO_CLIENT_ADDRESS), NULL if unknown. */
const struct sockaddr *cmhd_connection_address(struct MHD_Connection *c);

/* Whether this libmicrohttpd was built with TLS (MHD_FEATURE_TLS). */
int cmhd_tls_supported(void);

#endif
