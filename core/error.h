/*
 * error.h - how core functions report a failure: one line of text in the caller's
 * buffer (err, errlen), the return value saying that it failed. Core never prints
 * and never exits; the caller decides what the line becomes (a CLI message, a JSON error).
 */
#ifndef CS_ERROR_H
#define CS_ERROR_H

#include <stddef.h>

/* printf into err (when err is not NULL and errlen > 0), truncating to fit. */
void cs_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
