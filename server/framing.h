/*
 * framing.h - is the request's head well formed? The checks libmicrohttpd 0.9.75 does
 * not make, run before a request is handled (RFC 9110/9112 and the request smuggling
 * they prevent):
 *
 *   - one Host header (HTTP/1.1: exactly one; HTTP/1.0: at most one);
 *   - Content-Length only once (or repeated with the same value), never together with
 *     Transfer-Encoding, and Transfer-Encoding only "chunked" on HTTP/1.1;
 *   - header names are tokens (no space before the colon), values hold no control
 *     characters but tab (no bare CR);
 *   - the head is exactly its parsed parts: lines end in CRLF, no line folding, no NUL
 *     hidden in a value or in the target (0.9.75 cuts a line at a NUL and reads on).
 *
 * A request that fails gets 400 and its connection closed, so nothing after it on the
 * connection is read as another request.
 */
#ifndef CS_SERVER_FRAMING_H
#define CS_SERVER_FRAMING_H

#include <stddef.h>

struct MHD_Connection;

/* Flags of the raw request target, taken when libmicrohttpd has read the request line
 * (before it splits off the query and decodes it). */
typedef struct {
    size_t len;  /* strlen of the raw target */
    int bad;     /* holds a control character, a space or a byte 0x7f */
} cs_framing_target;

void cs_framing_target_scan(const char *raw_uri, cs_framing_target *t);

/* 0 when well formed; else -1 with the reason in why. method and version are the
 * arguments of the access handler's first call (they point into the request's head). */
int cs_framing_check(struct MHD_Connection *c, const char *method, const char *version,
                     const cs_framing_target *t, char *why, size_t whylen);

#endif
