/* probe.h — the C half of scripts/bench/rss_probe.swift: an empty libev
 * loop, and (with -DPROBE_LINK_CURL) one reference to libcurl so the
 * binary really links it. Nothing here is used by Vigil itself. */
#ifndef PROBE_H
#define PROBE_H
#include <ev.h>
#ifdef PROBE_LINK_CURL
#include <curl/curl.h>
#endif

static void probe_stop(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)w; (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs the default loop with nothing but a timer for `seconds`. */
static inline void probe_run_empty_loop(double seconds) {
    static ev_timer stop;
    struct ev_loop *loop = ev_default_loop(0);
    ev_timer_init(&stop, probe_stop, seconds, 0.);
    ev_timer_start(loop, &stop);
    ev_run(loop, 0);
}

/* A libcurl symbol the binary must resolve (the library is linked, never
 * initialised); "" without libcurl. */
static inline const char *probe_linked_library(void) {
#ifdef PROBE_LINK_CURL
    return curl_version_info(CURLVERSION_NOW)->version;
#else
    return "";
#endif
}
#endif
