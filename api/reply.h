/*
 * reply.h - every reply body the API sends: the one JSON error shape, JSON documents,
 * PNG images and plain text.
 *
 * Errors always look like {"error": {"code": "...", "message": "..."}}; the code is a
 * short stable word clients can switch on, the message is for people. Control
 * characters are stripped from messages and bytes that are not UTF-8 become '?', so a
 * client's input echoed back (a file name, a value) cannot break the log or the JSON.
 */
#ifndef CS_API_REPLY_H
#define CS_API_REPLY_H

#include <jansson.h>

#include "http.h"
#include "image.h"

/* Sets status and an error body. fmt is printf-style. */
void cs_reply_error(cs_reply *rep, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Takes ownership of doc (decref'd). status 200, 201, 202, ... A NULL doc, one that
 * cannot be written, or any jansson allocation of this thread that failed since
 * cs_reply_begin (a member may be missing) gives the 503 out_of_memory error instead
 * (with an empty body when not even that can be allocated). */
void cs_reply_json(cs_reply *rep, int status, json_t *doc);
/* Takes ownership of png (malloc'd). */
void cs_reply_png(cs_reply *rep, uint8_t *png, size_t len);
/* Encodes img as PNG (timed as the request's encode stage), destroys it, and replies
 * with it; NULL or a failed encoding is cs_reply_nomem naming `what` (handlers check
 * sizes before drawing). Returns 0 on success. */
int cs_reply_image(cs_req *req, cs_reply *rep, cs_image *img, const char *what);
/* Copies len bytes. */
void cs_reply_bytes(cs_reply *rep, int status, const char *content_type, const void *data, size_t len);

/* Sets the ETag header; when the request's If-None-Match names it, turns the reply
 * into 304 Not Modified and returns 1 (the handler then stops). etag is quoted. */
int cs_reply_etag(const cs_req *req, cs_reply *rep, const char *etag);

/* jansson allocates through a function that notes failures per thread (call once,
 * before other jansson calls); cs_reply_begin clears the note when a request starts. */
void cs_reply_track_json_allocations(void);
void cs_reply_begin(void);

/* The canned errors, so the same situation always reads the same. */
void cs_reply_not_found(cs_reply *rep, const char *what, const char *name);
void cs_reply_internal(cs_reply *rep, const char *what);
/* A failed allocation: 503 out_of_memory with Retry-After, for this request only (the
 * service goes on serving). Every allocation failure while answering ends here. */
void cs_reply_nomem(cs_reply *rep, const char *what);

/* A JSON number, or null for NaN and infinities (which JSON cannot write; jansson's
 * json_real refuses them, and json_pack("f") with one fails as a whole). */
json_t *cs_json_number(double v);

#endif
