// CSQLite: Debian's SQLite (libsqlite3-dev) for Swift, plus the few macros
// Swift cannot import, as static inline functions with a csqlite_ prefix.
#ifndef CSQLITE_H
#define CSQLITE_H
#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast of -1 to a function pointer, which Swift cannot
// import: SQLite copies the bytes before the bind call returns.
static inline int csqlite_bind_text(sqlite3_stmt *s, int i, const char *p, int n) {
    return sqlite3_bind_text(s, i, p, n, SQLITE_TRANSIENT);
}
static inline int csqlite_bind_blob(sqlite3_stmt *s, int i, const void *p, int n) {
    return sqlite3_bind_blob(s, i, p, n, SQLITE_TRANSIENT);
}
// sqlite3_config is variadic, which Swift cannot call. Without memory
// statistics SQLite takes no global mutex around each allocation; this
// works only before the library is initialised (else SQLITE_MISUSE).
static inline int csqlite_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
#endif
