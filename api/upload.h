/*
 * upload.h - collecting a request body while it streams in: a raw body (an image or
 * JSON) or a multipart/form-data form whose `image` parts are the images.
 *
 * The byte count is checked on every chunk, so a body past the limit is refused
 * without being read to the end. One cs_upload belongs to one request (one thread).
 */
#ifndef CS_API_UPLOAD_H
#define CS_API_UPLOAD_H

#include <stddef.h>

#include "http.h"

#define CS_UPLOAD_MAX_FILES 16

typedef struct cs_upload cs_upload;

/* connection: the libmicrohttpd connection. forms: 1 to parse a multipart/form-data
 * body into its `image` parts (image routes), 2 into every part (model uploads), 0 to
 * keep any body raw (JSON routes, so a form sent there fails to parse instead of
 * reading as empty). expected: the Content-Length (0 when unknown), so a raw body is
 * stored without reallocations.
 * Returns NULL when out of memory. */
cs_upload *cs_upload_new(void *connection, const char *content_type, size_t max_bytes, int forms, size_t expected);
/* Appends one chunk. 0 on success; 413 past the limit; 400 for a malformed form.
 * `image` parts past CS_UPLOAD_MAX_FILES are counted (cs_req.n_files_over), not kept. */
int cs_upload_feed(cs_upload *u, const char *data, size_t size);
/* Ends the body; then req's files / body point into u (valid until cs_upload_free). */
int cs_upload_finish(cs_upload *u, cs_req *req);
size_t cs_upload_bytes(const cs_upload *u);
void cs_upload_free(cs_upload *u);

#endif
