/* Intentionally empty: CEv is header-only (see include/cev.h). */
