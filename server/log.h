/*
 * log.h - the access log (one line per request) and the service's own messages.
 *
 * Access lines: "<ISO time> <method> <path> <status> <bytes> <ms>ms", written whole
 * with one write() so lines from many threads never interleave. The method and path
 * come from the client: their control characters, spaces and '%' are written as %XX.
 */
#ifndef CS_SERVER_LOG_H
#define CS_SERVER_LOG_H

#include <stddef.h>

/* "-" = standard output, "off" = none, else a file (appended). 0 or -1. */
int cs_log_open(const char *where);
void cs_log_close(void);
void cs_log_access(const char *method, const char *path, int status, size_t bytes, double ms);
/* A service message on standard error, prefixed with the time. */
void cs_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
