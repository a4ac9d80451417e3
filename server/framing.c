/*
 * framing.c - the request-head checks of framing.h.
 *
 * Most checks read the parsed headers. The last one (lines end in CRLF, nothing hidden
 * behind a NUL) needs the bytes as they came: libmicrohttpd 0.9.x parses the head in
 * place, turning the CR LF ending each line and the colon of each header into NULs and
 * pointing the method, version, names and values into that buffer, and it reports the
 * head's length. Walking the names and values in order must then land exactly on each
 * line's two NULs and on the head's end; a NUL inside a value (the line cut short), a
 * bare LF (one NUL), a folded line (its value copied elsewhere) or spaces around the
 * target do not. libmicrohttpd 1.0 makes these checks itself (its client discipline
 * option), so the walk is built for the 0.9 series only.
 */
#include "framing.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define WALK_HEAD (MHD_VERSION < 0x01000000)

typedef struct {
    uintptr_t end;     /* one past the head */
    const char *next;  /* where the next header line must start; NULL: not walking */
    int bad;
    char why[200];
    int hosts, lengths, encodings, lengths_differ;
    const char *length;
    size_t length_len;
    const char *encoding;
    size_t encoding_len;
} scan;

void cs_framing_target_scan(const char *raw_uri, cs_framing_target *t)
{
    t->len = strlen(raw_uri);
    t->bad = 0;
    for (size_t i = 0; i < t->len; i++) {
        unsigned char b = (unsigned char)raw_uri[i];
        if (b <= 0x20 || b == 0x7f) t->bad = 1;
    }
}

static int is_tchar(unsigned char b)
{
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
           (b && strchr("!#$%&'*+-.^_`|~", b));
}

static void fail(scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(scan *s, const char *fmt, ...)
{
    if (s->bad) return;
    s->bad = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
}

/* A header name as it may be shown in a message (what is not a token char as '?'). */
static const char *shown(const char *name, size_t len, char *buf, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < n; i++) buf[k++] = is_tchar((unsigned char)name[i]) ? name[i] : '?';
    buf[k] = 0;
    return buf;
}

/* Two NULs (the CR LF of a line) at p, inside the head. */
static int line_end_at(const scan *s, const char *p)
{
    return (uintptr_t)p + 2 <= s->end && p[0] == 0 && p[1] == 0;
}

static enum MHD_Result on_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                 const char *value, size_t value_size)
{
    (void)kind;
    scan *s = cls;
    char name[64];
    if (!key_size) fail(s, "a header line without a name");
    for (size_t i = 0; i < key_size; i++)
        if (!is_tchar((unsigned char)key[i]))
            fail(s, "header name '%s' holds a space or another character a name may not",
                 shown(key, key_size, name, sizeof name));
    for (size_t i = 0; value && i < value_size; i++) {
        unsigned char b = (unsigned char)value[i];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            fail(s, "header '%s' holds a control character", shown(key, key_size, name, sizeof name));
    }
    if (s->next) {
        /* key, its colon's NUL, optional spaces, the value, the line's two NULs */
        const char *p = s->next;
        int ok = key == p && (uintptr_t)(p + key_size) < s->end && p[key_size] == 0;
        if (ok) {
            p += key_size + 1;
            while ((uintptr_t)p < s->end && p < value && (*p == ' ' || *p == '\t')) p++;
            ok = value == p && line_end_at(s, p + value_size);
        }
        if (ok) s->next = p + value_size + 2;
        else {
            fail(s, "header '%s': its line is not a plain CRLF-ended line (bare LF, folding or a NUL)",
                 shown(key, key_size, name, sizeof name));
            s->next = NULL;
        }
    }
    if (key_size == 4 && !strncasecmp(key, "Host", 4)) s->hosts++;
    if (key_size == 14 && !strncasecmp(key, "Content-Length", 14)) {
        if (s->lengths && (value_size != s->length_len || memcmp(value, s->length, value_size)))
            s->lengths_differ = 1;
        s->lengths++;
        s->length = value;
        s->length_len = value_size;
    }
    if (key_size == 17 && !strncasecmp(key, "Transfer-Encoding", 17)) {
        s->encodings++;
        s->encoding = value;
        s->encoding_len = value_size;
    }
    return MHD_YES;
}

int cs_framing_check(struct MHD_Connection *c, const char *method, const char *version,
                     const cs_framing_target *t, char *why, size_t whylen)
{
    scan s = {0};
    int http11 = !strcmp(version, MHD_HTTP_VERSION_1_1);
    if (t->bad) fail(&s, "the request target holds a space or a control character");
#if WALK_HEAD
    const union MHD_ConnectionInfo *hs = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (!hs) {
        fail(&s, "the request head cannot be checked");
    } else {
        /* "METHOD SP target SP version CRLF": one space each side of the target. */
        s.end = (uintptr_t)method + hs->header_size;
        size_t ml = strlen(method);
        const char *ver = method + ml + 1 + t->len + 1;
        if (ver != version || !line_end_at(&s, version + strlen(version)))
            fail(&s, "the request line is not 'METHOD target HTTP/1.x' ended by CRLF");
        else
            s.next = version + strlen(version) + 2;
    }
#else
    (void)method;
#endif
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, on_header, &s);
#if WALK_HEAD
    if (s.next && !(line_end_at(&s, s.next) && (uintptr_t)s.next + 2 == s.end))
        fail(&s, "the request head does not end where its lines do");
#endif
    if (http11 ? s.hosts != 1 : s.hosts > 1)
        fail(&s, "%s", http11 ? "an HTTP/1.1 request needs exactly one Host header" : "more than one Host header");
    if (s.lengths_differ) fail(&s, "Content-Length given twice with different values");
    if (s.lengths && s.encodings) fail(&s, "both Content-Length and Transfer-Encoding");
    if (s.encodings > 1 || (s.encodings && (!http11 || s.encoding_len != 7 || strncasecmp(s.encoding, "chunked", 7))))
        fail(&s, "Transfer-Encoding other than one 'chunked' on HTTP/1.1");
    if (s.bad) snprintf(why, whylen, "%s", s.why);
    return s.bad ? -1 : 0;
}
