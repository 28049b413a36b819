// Snappy's C interface from Debian's libsnappy-dev: block compression of a
// remote-write request body (the format the Prometheus remote-write spec
// requires). Only the RemoteWrite module imports it.
#include <snappy-c.h>
