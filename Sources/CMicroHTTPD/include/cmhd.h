/*
 * cmhd.h — libmicrohttpd for Swift. MHD_start_daemon and
 * MHD_get_daemon_info are variadic, which Swift cannot call; these
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

/* Starts a daemon with no thread of its own (MHD_USE_EPOLL without an
 * internal polling thread, suspend/resume allowed) on `addr`. The caller
 * polls the epoll descriptor from its own loop and calls MHD_run. */
struct MHD_Daemon *cmhd_start(const struct sockaddr *addr, int ipv6,
                              MHD_AccessHandlerCallback handler, void *handler_cls,
                              MHD_RequestCompletedCallback completed, void *completed_cls,
                              cmhd_uri_callback uri, void *uri_cls,
                              unsigned int connection_limit, unsigned int timeout_seconds,
                              size_t connection_memory_limit);

/* The daemon's epoll descriptor (MHD_DAEMON_INFO_EPOLL_FD), -1 if none. */
int cmhd_epoll_fd(struct MHD_Daemon *d);

/* The bound port (MHD_DAEMON_INFO_BIND_PORT), for port-0 binds. */
uint16_t cmhd_bound_port(struct MHD_Daemon *d);

/* Connections currently open (MHD_DAEMON_INFO_CURRENT_CONNECTIONS). */
unsigned int cmhd_connection_count(struct MHD_Daemon *d);

#endif
