// CPQ: Debian's libpq (libpq-dev) for Swift — the PostgreSQL client library
// the collector's PostgreSQL store drives through its nonblocking API.
#ifndef CPQ_H
#define CPQ_H
#include <libpq-fe.h>
#endif
