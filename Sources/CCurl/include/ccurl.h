/*
 * ccurl.h — libcurl for Swift, loaded at run time.
 *
 * Linking libcurl makes the dynamic loader map it and its ~30 dependencies
 * (OpenSSL, nghttp2, libssh2, Kerberos, LDAP, ...) at process start, which
 * costs an idle process about 6 MB of resident memory (docs/PERFORMANCE.md,
 * "Synthetic monitors"). So nothing links -lcurl: `ccurl_load` dlopens
 * libcurl.so.4 when the first HTTP monitor is scheduled and resolves the
 * functions below through dlsym. curl.h is included for its types and
 * constants only.
 *
 * libcurl's setopt/getinfo calls are variadic, which Swift cannot call; the
 * fixed-argument wrappers below are typed per argument kind.
 *
 * Thread: call everything from the loop thread. Every wrapper requires a
 * successful `ccurl_load` first (they call through its function pointers).
 */
#ifndef CCURL_H
#define CCURL_H

#include <stddef.h>
#include <curl/curl.h>

/* Loads `soname` (NULL: "libcurl.so.4"), resolves the functions and runs
 * curl_global_init(CURL_GLOBAL_DEFAULT). Returns 0, or -1 with a message
 * naming the failed step in `err`. Once loaded, later calls return 0 at
 * once; the library is never unloaded (OpenSSL does not support it). */
int ccurl_load(const char *soname, char *err, size_t errlen);
int ccurl_is_loaded(void);
/* curl_version(), e.g. "libcurl/7.88.1 OpenSSL/3.0.11 ...". */
const char *ccurl_version(void);

CURL *ccurl_easy_init(void);
void ccurl_easy_cleanup(CURL *easy);
CURLcode ccurl_easy_setopt_long(CURL *easy, CURLoption option, long value);
CURLcode ccurl_easy_setopt_off(CURL *easy, CURLoption option, curl_off_t value);
CURLcode ccurl_easy_setopt_str(CURL *easy, CURLoption option, const char *value);
CURLcode ccurl_easy_setopt_ptr(CURL *easy, CURLoption option, void *value);
CURLcode ccurl_easy_setopt_slist(CURL *easy, CURLoption option, struct curl_slist *value);
CURLcode ccurl_easy_setopt_writefunction(CURL *easy, curl_write_callback fn);
CURLcode ccurl_easy_getinfo_long(CURL *easy, CURLINFO info, long *value);
CURLcode ccurl_easy_getinfo_off(CURL *easy, CURLINFO info, curl_off_t *value);
CURLcode ccurl_easy_getinfo_ptr(CURL *easy, CURLINFO info, void **value);
const char *ccurl_easy_strerror(CURLcode code);
/* Blocking transfer: only for a process of its own (vigil-notify), never on a loop. */
CURLcode ccurl_easy_perform(CURL *easy);

struct curl_slist *ccurl_slist_append(struct curl_slist *list, const char *string);
void ccurl_slist_free_all(struct curl_slist *list);

CURLM *ccurl_multi_init(void);
CURLMcode ccurl_multi_cleanup(CURLM *multi);
CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);
CURLMcode ccurl_multi_setopt_ptr(CURLM *multi, CURLMoption option, void *value);
CURLMcode ccurl_multi_setopt_socketfunction(CURLM *multi, curl_socket_callback fn);
CURLMcode ccurl_multi_setopt_timerfunction(CURLM *multi, curl_multi_timer_callback fn);
CURLMcode ccurl_multi_add_handle(CURLM *multi, CURL *easy);
CURLMcode ccurl_multi_remove_handle(CURLM *multi, CURL *easy);
CURLMcode ccurl_multi_socket_action(CURLM *multi, curl_socket_t fd, int ev_bitmask, int *running);
const char *ccurl_multi_strerror(CURLMcode code);
/* Next finished transfer from curl_multi_info_read: returns 1 and sets
 * `easy` and `result`, or 0 when none is left (CURLMsg's union stays here). */
int ccurl_multi_next_done(CURLM *multi, CURL **easy, CURLcode *result);

#endif
