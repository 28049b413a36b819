/*
 * cev.h — the only C the Reactor needs: libev's function-like macros as
 * static inline functions, because Swift cannot import macros.
 *
 * Each cev_X wraps exactly the libev macro ev_X (see ev.pod, "WATCHER
 * TYPES"). Nothing else belongs here: the event loop logic lives in Swift.
 */
#ifndef CEV_H
#define CEV_H

#include <ev.h>

/* Trampoline signatures, one per watcher type (ev.pod: "callback"). */
typedef void (*cev_io_cb)(struct ev_loop *, ev_io *, int);
typedef void (*cev_timer_cb)(struct ev_loop *, ev_timer *, int);
typedef void (*cev_periodic_cb)(struct ev_loop *, ev_periodic *, int);
typedef void (*cev_signal_cb)(struct ev_loop *, ev_signal *, int);
typedef void (*cev_child_cb)(struct ev_loop *, ev_child *, int);
typedef void (*cev_async_cb)(struct ev_loop *, ev_async *, int);
typedef void (*cev_idle_cb)(struct ev_loop *, ev_idle *, int);
typedef void (*cev_check_cb)(struct ev_loop *, ev_check *, int);
typedef void (*cev_prepare_cb)(struct ev_loop *, ev_prepare *, int);

static inline void cev_io_init(ev_io *w, cev_io_cb cb, int fd, int events) { ev_io_init(w, cb, fd, events); }
static inline void cev_io_set(ev_io *w, int fd, int events) { ev_io_set(w, fd, events); }
static inline void cev_io_modify(ev_io *w, int events) { ev_io_modify(w, events); }
static inline void cev_timer_init(ev_timer *w, cev_timer_cb cb, ev_tstamp after, ev_tstamp repeat) { ev_timer_init(w, cb, after, repeat); }
static inline void cev_timer_set(ev_timer *w, ev_tstamp after, ev_tstamp repeat) { ev_timer_set(w, after, repeat); }
static inline void cev_periodic_init(ev_periodic *w, cev_periodic_cb cb, ev_tstamp offset, ev_tstamp interval) { ev_periodic_init(w, cb, offset, interval, 0); }
static inline void cev_periodic_set(ev_periodic *w, ev_tstamp offset, ev_tstamp interval) { ev_periodic_set(w, offset, interval, 0); }
static inline ev_tstamp cev_periodic_at(ev_periodic *w) { return ev_periodic_at(w); }
static inline void cev_signal_init(ev_signal *w, cev_signal_cb cb, int signum) { ev_signal_init(w, cb, signum); }
static inline void cev_child_init(ev_child *w, cev_child_cb cb, int pid, int trace) { ev_child_init(w, cb, pid, trace); }
static inline void cev_async_init(ev_async *w, cev_async_cb cb) { ev_async_init(w, cb); }
static inline int cev_async_pending(ev_async *w) { return ev_async_pending(w); }
static inline void cev_idle_init(ev_idle *w, cev_idle_cb cb) { ev_idle_init(w, cb); }
static inline void cev_check_init(ev_check *w, cev_check_cb cb) { ev_check_init(w, cb); }
static inline void cev_prepare_init(ev_prepare *w, cev_prepare_cb cb) { ev_prepare_init(w, cb); }

/* Priority bounds; the macros carry a unary plus Swift cannot import. */
static const int CEV_MINPRI = EV_MINPRI;
static const int CEV_MAXPRI = EV_MAXPRI;

static inline int cev_is_active(const void *w) { return ev_is_active((ev_watcher *)w); }
static inline int cev_is_pending(const void *w) { return ev_is_pending((ev_watcher *)w); }
static inline void cev_set_priority(void *w, int pri) { ev_set_priority((ev_watcher *)w, pri); }
static inline void *cev_data(const void *w) { return ((const ev_watcher *)w)->data; }
static inline void cev_set_data(void *w, void *data) { ((ev_watcher *)w)->data = data; }

#endif
