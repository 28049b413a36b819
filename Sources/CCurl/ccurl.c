/* ccurl.c — libcurl resolved with dlopen/dlsym; see ccurl.h for why. */
#include "ccurl.h"
#include <dlfcn.h>
#include <stdio.h>

static void *lib;

static CURLcode (*p_global_init)(long);
static char *(*p_version)(void);
static CURL *(*p_easy_init)(void);
static void (*p_easy_cleanup)(CURL *);
static CURLcode (*p_easy_setopt)(CURL *, CURLoption, ...);
static CURLcode (*p_easy_getinfo)(CURL *, CURLINFO, ...);
static const char *(*p_easy_strerror)(CURLcode);
static CURLcode (*p_easy_perform)(CURL *);
static struct curl_slist *(*p_slist_append)(struct curl_slist *, const char *);
static void (*p_slist_free_all)(struct curl_slist *);
static CURLM *(*p_multi_init)(void);
static CURLMcode (*p_multi_cleanup)(CURLM *);
static CURLMcode (*p_multi_setopt)(CURLM *, CURLMoption, ...);
static CURLMcode (*p_multi_add_handle)(CURLM *, CURL *);
static CURLMcode (*p_multi_remove_handle)(CURLM *, CURL *);
static CURLMcode (*p_multi_socket_action)(CURLM *, curl_socket_t, int, int *);
static CURLMsg *(*p_multi_info_read)(CURLM *, int *);
static const char *(*p_multi_strerror)(CURLMcode);

/* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
#define RESOLVE(ptr, name)                                                   \
    do {                                                                     \
        *(void **)(&ptr) = dlsym(handle, name);                              \
        if (!ptr) {                                                          \
            snprintf(err, errlen, "dlsym(%s): %s", name, dlerror());         \
            dlclose(handle);                                                 \
            return -1;                                                       \
        }                                                                    \
    } while (0)

int ccurl_load(const char *soname, char *err, size_t errlen) {
    if (lib) return 0;
    if (!soname) soname = "libcurl.so.4";
    void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(err, errlen, "dlopen(%s): %s", soname, dlerror());
        return -1;
    }
    RESOLVE(p_global_init, "curl_global_init");
    RESOLVE(p_version, "curl_version");
    RESOLVE(p_easy_init, "curl_easy_init");
    RESOLVE(p_easy_cleanup, "curl_easy_cleanup");
    RESOLVE(p_easy_setopt, "curl_easy_setopt");
    RESOLVE(p_easy_getinfo, "curl_easy_getinfo");
    RESOLVE(p_easy_strerror, "curl_easy_strerror");
    RESOLVE(p_easy_perform, "curl_easy_perform");
    RESOLVE(p_slist_append, "curl_slist_append");
    RESOLVE(p_slist_free_all, "curl_slist_free_all");
    RESOLVE(p_multi_init, "curl_multi_init");
    RESOLVE(p_multi_cleanup, "curl_multi_cleanup");
    RESOLVE(p_multi_setopt, "curl_multi_setopt");
    RESOLVE(p_multi_add_handle, "curl_multi_add_handle");
    RESOLVE(p_multi_remove_handle, "curl_multi_remove_handle");
    RESOLVE(p_multi_socket_action, "curl_multi_socket_action");
    RESOLVE(p_multi_info_read, "curl_multi_info_read");
    RESOLVE(p_multi_strerror, "curl_multi_strerror");
    CURLcode rc = p_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init: %s", p_easy_strerror(rc));
        dlclose(handle);
        return -1;
    }
    lib = handle;
    return 0;
}

int ccurl_is_loaded(void) { return lib != NULL; }
const char *ccurl_version(void) { return p_version(); }

CURL *ccurl_easy_init(void) { return p_easy_init(); }
void ccurl_easy_cleanup(CURL *easy) { p_easy_cleanup(easy); }
CURLcode ccurl_easy_setopt_long(CURL *easy, CURLoption option, long value) { return p_easy_setopt(easy, option, value); }
CURLcode ccurl_easy_setopt_off(CURL *easy, CURLoption option, curl_off_t value) { return p_easy_setopt(easy, option, value); }
CURLcode ccurl_easy_setopt_str(CURL *easy, CURLoption option, const char *value) { return p_easy_setopt(easy, option, value); }
CURLcode ccurl_easy_setopt_ptr(CURL *easy, CURLoption option, void *value) { return p_easy_setopt(easy, option, value); }
CURLcode ccurl_easy_setopt_slist(CURL *easy, CURLoption option, struct curl_slist *value) { return p_easy_setopt(easy, option, value); }
CURLcode ccurl_easy_setopt_writefunction(CURL *easy, curl_write_callback fn) { return p_easy_setopt(easy, CURLOPT_WRITEFUNCTION, fn); }
CURLcode ccurl_easy_getinfo_long(CURL *easy, CURLINFO info, long *value) { return p_easy_getinfo(easy, info, value); }
CURLcode ccurl_easy_getinfo_off(CURL *easy, CURLINFO info, curl_off_t *value) { return p_easy_getinfo(easy, info, value); }
CURLcode ccurl_easy_getinfo_ptr(CURL *easy, CURLINFO info, void **value) { return p_easy_getinfo(easy, info, value); }
const char *ccurl_easy_strerror(CURLcode code) { return p_easy_strerror(code); }
CURLcode ccurl_easy_perform(CURL *easy) { return p_easy_perform(easy); }

struct curl_slist *ccurl_slist_append(struct curl_slist *list, const char *string) { return p_slist_append(list, string); }
void ccurl_slist_free_all(struct curl_slist *list) { p_slist_free_all(list); }

CURLM *ccurl_multi_init(void) { return p_multi_init(); }
CURLMcode ccurl_multi_cleanup(CURLM *multi) { return p_multi_cleanup(multi); }
CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) { return p_multi_setopt(multi, option, value); }
CURLMcode ccurl_multi_setopt_ptr(CURLM *multi, CURLMoption option, void *value) { return p_multi_setopt(multi, option, value); }
CURLMcode ccurl_multi_setopt_socketfunction(CURLM *multi, curl_socket_callback fn) { return p_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, fn); }
CURLMcode ccurl_multi_setopt_timerfunction(CURLM *multi, curl_multi_timer_callback fn) { return p_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, fn); }
CURLMcode ccurl_multi_add_handle(CURLM *multi, CURL *easy) { return p_multi_add_handle(multi, easy); }
CURLMcode ccurl_multi_remove_handle(CURLM *multi, CURL *easy) { return p_multi_remove_handle(multi, easy); }
CURLMcode ccurl_multi_socket_action(CURLM *multi, curl_socket_t fd, int ev_bitmask, int *running) {
    return p_multi_socket_action(multi, fd, ev_bitmask, running);
}
const char *ccurl_multi_strerror(CURLMcode code) { return p_multi_strerror(code); }

int ccurl_multi_next_done(CURLM *multi, CURL **easy, CURLcode *result) {
    int left = 0;
    CURLMsg *m;
    while ((m = p_multi_info_read(multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE) {
            *easy = m->easy_handle;
            *result = m->data.result;
            return 1;
        }
    }
    return 0;
}
