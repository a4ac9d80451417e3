/*
 * params.c - query argument parsing with range checks and 400 replies.
 */
#include "params.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

int cs_parse_long(const char *s, long *out)
{
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

typedef struct {
    char key[64];
} nul_found;

static int find_nul(void *arg, const char *key, size_t key_len, const char *value, size_t value_len)
{
    if (memchr(key, 0, key_len) || (value && memchr(value, 0, value_len))) {
        nul_found *f = arg;
        size_t n = strnlen(key, key_len);
        if (n >= sizeof f->key) n = sizeof f->key - 1;
        memcpy(f->key, key, n);
        f->key[n] = 0;
        return 1;
    }
    return 0;
}

int cs_query_check(const cs_req *req, cs_reply *rep)
{
    nul_found f = {""};
    if (!req->query_each_fn || !req->query_each_fn(req->transport, find_nul, &f)) return 1;
    cs_reply_error(rep, 400, "bad_parameter", "query argument '%s' holds a NUL byte (%%00)", f.key);
    return 0;
}

int cs_param_int(const cs_req *req, cs_reply *rep, const char *name, long def, long min, long max,
                 long *out)
{
    const char *s = cs_req_query(req, name);
    if (!s) {
        *out = def;
        return 1;
    }
    long v;
    if (!cs_parse_long(s, &v) || v < min || v > max) {
        cs_reply_error(rep, 400, "bad_parameter", "%s must be an integer from %ld to %ld, got '%.64s'",
                       name, min, max, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cs_param_float(const cs_req *req, cs_reply *rep, const char *name, double def, double min,
                   double max, double *out)
{
    const char *s = cs_req_query(req, name);
    if (!s) {
        *out = def;
        return 1;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || errno || *end || !isfinite(v) || v < min || v > max) {
        cs_reply_error(rep, 400, "bad_parameter", "%s must be a number from %g to %g, got '%.64s'",
                       name, min, max, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cs_param_choice(const cs_req *req, cs_reply *rep, const char *name, const char *const *choices,
                    int def, int *out)
{
    const char *s = cs_req_query(req, name);
    if (!s) {
        *out = def;
        return 1;
    }
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return 1;
        }
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    cs_reply_error(rep, 400, "bad_parameter", "%s must be one of %s, got '%.64s'", name, list, s);
    return 0;
}
