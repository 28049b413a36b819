// A C target needs one source file; everything is in <sodium.h>.
#include "csodium.h"
