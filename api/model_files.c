/*
 * model_files.c - bringing a model file to the service and taking it away: an upload
 * is checked (loaded) and written into the models folder atomically before it is
 * listed; a deletion removes its files. Both need the bearer token when one is set,
 * checked before the body is read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "registry.h"
#include "reply.h"
#include "sidecar.h"

/* The form's part named `field`, or NULL. */
static const cs_upload_file *part(const cs_req *req, const char *field)
{
    for (int i = 0; i < req->n_files; i++)
        if (req->files[i].field && !strcmp(req->files[i].field, field)) return &req->files[i];
    return NULL;
}

/* A part's bytes as a NUL-terminated string (malloc'd), or NULL. */
static char *part_text(const cs_upload_file *f)
{
    char *s = malloc(f->len + 1);
    if (s) {
        memcpy(s, f->data, f->len);
        s[f->len] = 0;
    }
    return s;
}

/* The sidecar the form's labels, preprocessing and description make, as JSON text
 * (malloc'd) or NULL when the form has none of them; NULL with a reply on a mistake. */
static char *form_sidecar(const cs_req *req, cs_reply *rep, int *failed)
{
    const cs_upload_file *labels = part(req, "labels"), *pre = part(req, "preprocessing"),
                         *desc = part(req, "description");
    *failed = 0;
    if (!labels && !pre && !desc) return NULL;
    json_t *doc = json_object();
    char err[300], *text = NULL;
    if (!doc) goto nomem;
    if (labels && labels->len) {
        char **names, **ids;
        int n;
        if (cs_sidecar_parse_labels((const char *)labels->data, labels->len, &names, &ids, &n, err, sizeof err) != 0) {
            cs_reply_error(rep, 422, "bad_labels", "%s", err);
            goto fail;
        }
        json_t *a = json_array();
        for (int i = 0; a && i < n; i++)
            json_array_append_new(a, ids[i] ? json_pack("[s,s]", ids[i], names[i]) : json_string(names[i]));
        cs_sidecar_free_labels(names, ids, n);
        if (!a) goto nomem;
        json_object_set_new(doc, "labels", a);
    }
    if (pre && pre->len) {
        json_error_t je;
        json_t *p = json_loadb((const char *)pre->data, pre->len, 0, &je);
        if (!json_is_object(p)) {
            json_decref(p);
            cs_reply_error(rep, 422, "bad_preprocessing", "preprocessing must be a JSON object such as "
                           "{\"mode\": \"torch\"}%s%s", p ? "" : ": ", p ? "" : je.text);
            goto fail;
        }
        json_object_set_new(doc, "preprocessing", p);
    }
    if (desc && desc->len) {
        char *d = part_text(desc);
        if (!d) goto nomem;
        json_object_set_new(doc, "description", json_string(d));
        free(d);
    }
    text = json_dumps(doc, JSON_INDENT(2));
    if (!text) goto nomem;
    json_decref(doc);
    return text;
nomem:
    cs_reply_nomem(rep, "cannot answer");
fail:
    json_decref(doc);
    *failed = 1;
    return NULL;
}

/* POST /v1/models  multipart: file (.onnx | .h5 | .hdf5 | .keras | .csm), name, labels, preprocessing,
 * description  -> 201 + Location /v1/models/{name} */
void cs_h_model_upload(cs_req *req, cs_reply *rep)
{
    const cs_upload_file *file = part(req, "file");
    if (!file || !file->len) {
        cs_reply_error(rep, 400, "no_file",
                       "send the model as the multipart field 'file' (curl -F file=@model.onnx -F name=mine)");
        return;
    }
    /* The format by the file's extension; the name by the field, else the file's name. */
    const char *fname = file->filename ? file->filename : "";
    const char *slash = strrchr(fname, '/');
    if (slash) fname = slash + 1;
    const char *dot = strrchr(fname, '.');
    char ext[16] = "", name[64] = "";
    if (dot && strlen(dot) < sizeof ext) snprintf(ext, sizeof ext, "%s", dot);
    for (char *p = ext; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    const cs_upload_file *nf = part(req, "name");
    if (nf && nf->len) snprintf(name, sizeof name, "%.*s", (int)(nf->len < 63 ? nf->len : 63), (const char *)nf->data);
    else if (dot) snprintf(name, sizeof name, "%.*s", (int)(dot - fname < 63 ? dot - fname : 63), fname);
    if (nf && nf->len >= 63) name[0] = 0; /* too long: refused as a bad name */
    int failed;
    char *sidecar = form_sidecar(req, rep, &failed);
    if (failed) return;
    cs_model_upload u = {.name = name, .ext = ext, .data = file->data, .len = file->len, .sidecar = sidecar,
                         .sidecar_len = sidecar ? strlen(sidecar) : 0};
    cs_served_model *s = NULL;
    char why[1000];
    int status = cs_registry_add(&u, &s, why, sizeof why);
    free(sidecar);
    if (status) {
        const char *code = status == 400   ? "bad_name"
                           : status == 409 ? "model_exists"
                           : status == 415 ? "unsupported_media_type"
                           : status == 422 ? "bad_model"
                           : status == 503 ? "out_of_memory"
                                           : "internal";
        cs_reply_error(rep, status, code, "%s", why);
        return;
    }
    char loc[128];
    snprintf(loc, sizeof loc, "/v1/models/%s", s->name);
    cs_reply_json(rep, 201, cs_model_entry_json(s));
    cs_reply_header(rep, "Location", loc);
}

/* DELETE /v1/models/{model}  -> 200 {name, deleted: [files]} */
void cs_h_model_delete(cs_req *req, cs_reply *rep)
{
    const char *name = cs_req_param(req, "model");
    char deleted[600], why[600];
    int status = cs_registry_remove(name, deleted, sizeof deleted, why, sizeof why);
    if (status) {
        cs_reply_error(rep, status, status == 404 ? "not_found" : status == 403 ? "protected_model"
                                                              : status == 409   ? "job_running"
                                                                                : "internal",
                       "%s", why);
        return;
    }
    json_t *files = json_array();
    for (char *p = deleted, *end; *p; p = end + (*end != 0)) {
        end = strchr(p, ' ');
        if (!end) end = p + strlen(p);
        json_array_append_new(files, json_stringn(p, (size_t)(end - p)));
    }
    cs_reply_json(rep, 200, json_pack("{s:s,s:o}", "name", name, "deleted", files));
}
