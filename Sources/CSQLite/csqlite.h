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
#endif
