/*
 * upload.c - raw bodies and multipart/form-data forms, bounded in size.
 *
 * Forms are parsed by libmicrohttpd's post processor (it knows the boundary rules,
 * quoting and nested content types); we keep the parts named `image`, one file per
 * part, in upload order, and ignore every other field; a model upload's form keeps
 * every part, each under its field name.
 */
#include "upload.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *data;
    size_t len, cap;
} byte_buf;

struct cs_upload {
    size_t max, seen;
    struct MHD_PostProcessor *pp; /* NULL for a raw body */
    byte_buf raw;
    int n_files, n_over, bad;
    int all_fields; /* keep every part, not only `image` ones */
    byte_buf files[CS_UPLOAD_MAX_FILES];
    char names[CS_UPLOAD_MAX_FILES][128];
    char fields[CS_UPLOAD_MAX_FILES][64];
    char types[CS_UPLOAD_MAX_FILES][64];
    cs_upload_file views[CS_UPLOAD_MAX_FILES];
    char content_type[128];
};

static int buf_append(byte_buf *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0; /* a JSON body can be parsed as a string */
    return 0;
}

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *filename, const char *content_type,
                                const char *transfer_encoding, const char *data, uint64_t off,
                                size_t size)
{
    (void)kind, (void)transfer_encoding;
    cs_upload *u = cls;
    if (!key || (!u->all_fields && strcmp(key, "image") != 0)) return MHD_YES;
    /* A new part starts at offset 0; the same name may come several times. Parts past
     * the last one kept are counted, not stored, so the handler can say how many
     * images came (too_many_images) rather than the form reading as malformed. */
    if (off == 0) {
        if (u->n_files >= CS_UPLOAD_MAX_FILES) {
            u->n_over++;
            return MHD_YES;
        }
        int i = u->n_files++;
        snprintf(u->fields[i], sizeof u->fields[i], "%s", key);
        snprintf(u->names[i], sizeof u->names[i], "%s", filename ? filename : "");
        snprintf(u->types[i], sizeof u->types[i], "%s", content_type ? content_type : "");
    }
    if (!u->n_files || u->n_over) return MHD_YES;
    if (size && buf_append(&u->files[u->n_files - 1], data, size) != 0) {
        u->bad = 500;
        return MHD_NO;
    }
    return MHD_YES;
}

cs_upload *cs_upload_new(void *connection, const char *content_type, size_t max_bytes, int forms, size_t expected)
{
    cs_upload *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->max = max_bytes;
    snprintf(u->content_type, sizeof u->content_type, "%s", content_type ? content_type : "");
    u->all_fields = forms == 2;
    if (forms && content_type && strncasecmp(content_type, "multipart/form-data", 19) == 0) {
        u->pp = MHD_create_post_processor(connection, 64 * 1024, on_field, u);
        if (!u->pp) u->bad = 400; /* no boundary: a malformed form */
    } else if (expected && expected <= max_bytes) {
        /* The byte budget reserved exactly this much; doubling on the way would hold up to
         * twice as much. Failing here is not an error yet: buf_append tries again. */
        u->raw.data = malloc(expected + 1);
        u->raw.cap = u->raw.data ? expected + 1 : 0;
    }
    return u;
}

int cs_upload_feed(cs_upload *u, const char *data, size_t size)
{
    if (u->bad) return u->bad;
    u->seen += size;
    if (u->seen > u->max) return u->bad = 413;
    if (u->pp) {
        if (MHD_post_process(u->pp, data, size) != MHD_YES) return u->bad ? u->bad : (u->bad = 400);
        return u->bad;
    }
    if (buf_append(&u->raw, data, size) != 0) return u->bad = 500;
    return 0;
}

int cs_upload_finish(cs_upload *u, cs_req *req)
{
    if (u->bad) return u->bad;
    if (u->pp) {
        if (MHD_destroy_post_processor(u->pp) != MHD_YES && !u->bad) u->bad = 400;
        u->pp = NULL;
        if (u->bad) return u->bad;
        for (int i = 0; i < u->n_files; i++) {
            u->views[i] = (cs_upload_file){(const uint8_t *)(u->files[i].data ? u->files[i].data : ""),
                                           u->files[i].len, u->names[i], u->types[i], u->fields[i]};
        }
        req->files = u->views;
        req->n_files = u->n_files;
        req->n_files_over = u->n_over;
        req->body = NULL;
        req->body_len = 0;
        return 0;
    }
    req->body = (const uint8_t *)(u->raw.data ? u->raw.data : "");
    req->body_len = u->raw.len;
    if (u->raw.len) {
        u->views[0] = (cs_upload_file){(const uint8_t *)u->raw.data, u->raw.len, "", u->content_type, ""};
        req->files = u->views;
        req->n_files = 1;
    }
    return 0;
}

size_t cs_upload_bytes(const cs_upload *u)
{
    return u->seen;
}

void cs_upload_free(cs_upload *u)
{
    if (!u) return;
    if (u->pp) MHD_destroy_post_processor(u->pp);
    free(u->raw.data);
    for (int i = 0; i < CS_UPLOAD_MAX_FILES; i++) free(u->files[i].data);
    free(u);
}
