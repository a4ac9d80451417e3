/*
 * params.h - reading query arguments, or replying 400 and saying which one was wrong.
 *
 * Each helper returns 1 with the value (the default when the argument is absent) or
 * 0 after writing a 400 reply; the handler then just returns.
 */
#ifndef CS_API_PARAMS_H
#define CS_API_PARAMS_H

#include "http.h"

int cs_param_int(const cs_req *req, cs_reply *rep, const char *name, long def, long min, long max,
                 long *out);
int cs_param_float(const cs_req *req, cs_reply *rep, const char *name, double def, double min,
                   double max, double *out);
/* One of the NULL-terminated `choices`; *out is its index. */
int cs_param_choice(const cs_req *req, cs_reply *rep, const char *name, const char *const *choices,
                    int def, int *out);

/* Every query argument of the request is text: a key or value holding a NUL byte
 * (%00, which would silently cut it short) is refused. 1, or 0 after a 400. The
 * dispatcher calls it before any handler. */
int cs_query_check(const cs_req *req, cs_reply *rep);

/* Parses a whole decimal integer (no trailing junk); 1 on success. */
int cs_parse_long(const char *s, long *out);

#endif
