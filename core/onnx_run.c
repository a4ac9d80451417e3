/*
 * onnx_run.c - a model run on named tensors (onnx_run.h): inputs checked against the
 * signature, moved into the core's layout, one forward pass, outputs moved back.
 */
#include "onnx_run.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec.h"

int cs_onnx_layout_dims(const cs_onnx_layout *l, int64_t n, int64_t *dims)
{
    const cs_shape s = l->item;
    dims[0] = n;
    if (l->channels_last && l->rank == 4) {
        dims[1] = s.h, dims[2] = s.w, dims[3] = s.c;
        return 4;
    }
    switch (l->rank) {
    case 4: dims[1] = s.c, dims[2] = s.h, dims[3] = s.w; return 4;
    case 3: dims[1] = s.c, dims[2] = s.w; return 3;
    case 2: dims[1] = (int64_t)s.h * s.w * s.c; return 2;
    default: return 1;
    }
}

/* Items whose ONNX order is (C, P) and the core's (P, C): channels and positions. */
static int transposed(const cs_onnx_layout *l, size_t *c, size_t *pos)
{
    if (l->channels_last) return 0;
    if (l->rank >= 3) *c = (size_t)l->item.c, *pos = (size_t)l->item.h * l->item.w;
    else if (l->flat_c) *c = (size_t)l->flat_c, *pos = (size_t)l->flat_h * l->flat_w;
    else return 0;
    return *c > 1 && *pos > 1;
}

void cs_onnx_layout_to_core(const cs_onnx_layout *l, int n, const float *src, float *core)
{
    size_t c, pos, item = cs_shape_size(l->item);
    if (!transposed(l, &c, &pos)) {
        memcpy(core, src, (size_t)n * item * sizeof(float));
        return;
    }
    for (int b = 0; b < n; b++)
        for (size_t ch = 0; ch < c; ch++)
            for (size_t p = 0; p < pos; p++) core[b * item + p * c + ch] = src[b * item + ch * pos + p];
}

void cs_onnx_layout_from_core(const cs_onnx_layout *l, int n, const float *core, float *dst)
{
    size_t c, pos, item = cs_shape_size(l->item);
    if (!transposed(l, &c, &pos)) {
        memcpy(dst, core, (size_t)n * item * sizeof(float));
        return;
    }
    for (int b = 0; b < n; b++)
        for (size_t ch = 0; ch < c; ch++)
            for (size_t p = 0; p < pos; p++) dst[b * item + ch * pos + p] = core[b * item + p * c + ch];
}

static char *dup_str(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

int cs_model_signature(const cs_model *m, cs_onnx_signature *sig)
{
    memset(sig, 0, sizeof *sig);
    sig->batch = -1;
    sig->inputs = calloc(1, sizeof *sig->inputs);
    sig->outputs = calloc(1, sizeof *sig->outputs);
    if (!sig->inputs || !sig->outputs || m->n_layers < 1 || m->n_extra_inputs) goto fail;
    sig->inputs[0] = (cs_onnx_io){.name = dup_str("input"), .node = CS_MODEL_INPUT,
                                  .layout = {.rank = 4, .item = m->input, .channels_last = 1}};
    sig->n_inputs = 1;
    const cs_layer *top = &m->layers[m->n_layers - 1];
    int vec = top->out.h == 1 && top->out.w == 1;
    sig->outputs[0] = (cs_onnx_io){.name = dup_str(top->name), .node = m->n_layers - 1,
                                   .layout = {.rank = vec ? 2 : 4, .item = top->out, .channels_last = 1}};
    sig->n_outputs = 1;
    if (sig->inputs[0].name && sig->outputs[0].name) return 0;
fail:
    cs_onnx_signature_free(sig);
    return -1;
}

static const char *dims_text(char *buf, size_t len, const int64_t *dims, int ndim, int batch_open)
{
    size_t at = 0;
    buf[0] = 0;
    for (int k = 0; k < ndim && at < len; k++) {
        int w = k == 0 && batch_open ? snprintf(buf + at, len - at, "N") :
                                       snprintf(buf + at, len - at, k ? "x%lld" : "%lld", (long long)dims[k]);
        if (w < 0) break;
        at += (size_t)w;
    }
    if (ndim == 0) snprintf(buf, len, "a scalar");
    return buf;
}

/* The input of sig each tensor of `in` feeds, all of them found and checked. */
static int match_inputs(const cs_onnx_signature *sig, const cs_onnx_tensor *in, int n_in,
                        const cs_onnx_tensor **given, int64_t *batch, char *err, size_t errlen)
{
    memset(given, 0, (size_t)sig->n_inputs * sizeof *given);
    for (int i = 0; i < n_in; i++) {
        int k = 0;
        while (k < sig->n_inputs && strcmp(sig->inputs[k].name, in[i].name)) k++;
        if (k == sig->n_inputs) {
            char names[256] = "";
            for (int j = 0; j < sig->n_inputs; j++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'", j ? ", " : "",
                         sig->inputs[j].name);
            cs_set_err(err, errlen, "the model has no input '%s' (its inputs: %s)", in[i].name, names);
            return -1;
        }
        if (given[k]) {
            cs_set_err(err, errlen, "input '%s' is given twice", in[i].name);
            return -1;
        }
        given[k] = &in[i];
    }
    *batch = -1;
    for (int k = 0; k < sig->n_inputs; k++) {
        const cs_onnx_io *io = &sig->inputs[k];
        const cs_onnx_tensor *t = given[k];
        int64_t want[CS_ONNX_MAX_DIMS];
        char a[160], b[160];
        int nd = cs_onnx_layout_dims(&io->layout, sig->batch, want);
        dims_text(b, sizeof b, want, nd, sig->batch < 0);
        if (!t) {
            cs_set_err(err, errlen, "no value for input '%s' (%s FLOAT)", io->name, b);
            return -1;
        }
        if (t->elem_type != CS_ONNX_FLOAT) {
            cs_set_err(err, errlen, "input '%s' is %s; the model takes FLOAT", io->name, cs_onnx_type_name(t->elem_type));
            return -1;
        }
        int same = t->ndim == nd && t->dims[0] >= 1 && (sig->batch < 0 || t->dims[0] == sig->batch);
        for (int d = 1; same && d < nd; d++) same = t->dims[d] == want[d];
        if (!same) {
            cs_set_err(err, errlen, "input '%s' is %s; the model takes %s%s", io->name,
                       dims_text(a, sizeof a, t->dims, t->ndim, 0), b, sig->batch < 0 ? " (N the batch)" : "");
            return -1;
        }
        if (*batch > 0 && t->dims[0] != *batch) {
            cs_set_err(err, errlen, "input '%s' has a batch of %lld, input '%s' one of %lld: they must agree", io->name,
                       (long long)t->dims[0], sig->inputs[0].name, (long long)*batch);
            return -1;
        }
        *batch = t->dims[0];
        if (*batch > INT_MAX / 2) {
            cs_set_err(err, errlen, "input '%s': a batch of %lld is too large", io->name, (long long)*batch);
            return -1;
        }
    }
    return 0;
}

/* out: a FLOAT tensor named `name` of n items of layout l, from the core's values. */
static int output_of(const char *name, const cs_onnx_layout *l, int n, const float *core, cs_onnx_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->elem_type = CS_ONNX_FLOAT;
    out->ndim = cs_onnx_layout_dims(l, n, out->dims);
    out->count = (int64_t)n * (int64_t)cs_shape_size(l->item);
    out->name = dup_str(name);
    out->f = malloc((size_t)(out->count ? out->count : 1) * sizeof(float));
    if (!out->name || !out->f) return -1;
    cs_onnx_layout_from_core(l, n, core, out->f);
    return 0;
}

int cs_onnx_run(const cs_model *m, const cs_onnx_signature *sig, const cs_onnx_tensor *in, int n_in,
                const int *nodes, int n_nodes, cs_onnx_tensor *out, char *err, size_t errlen)
{
    const cs_onnx_tensor *given[CS_MAX_MODEL_INPUTS];
    float *core[CS_MAX_MODEL_INPUTS] = {0};
    int64_t batch;
    memset(out, 0, (size_t)(sig->n_outputs + n_nodes) * sizeof *out);
    if (sig->n_inputs < 1 || sig->n_inputs > CS_MAX_MODEL_INPUTS || sig->n_inputs != m->n_extra_inputs + 1) {
        cs_set_err(err, errlen, "the model's inputs do not match its signature");
        return -1;
    }
    if (match_inputs(sig, in, n_in, given, &batch, err, errlen) != 0) return -1;
    int n = (int)batch, rc = -1;
    for (int j = 0; j < n_nodes; j++)
        if (nodes[j] < 0 || nodes[j] >= m->n_layers) {
            cs_set_err(err, errlen, "no node %d", nodes[j]);
            return -1;
        }
    cs_exec *e = NULL;
    for (int k = 0; k < sig->n_inputs; k++) {
        const cs_onnx_layout *l = &sig->inputs[k].layout;
        if (!(core[k] = malloc((size_t)n * cs_shape_size(l->item) * sizeof(float)))) goto oom;
        cs_onnx_layout_to_core(l, n, given[k]->f, core[k]);
    }
    if (m->n_layers > 0) {
        if (!(e = cs_exec_new(m, n)) || cs_exec_forward_inputs(e, (const float *const *)core, n, 0, NULL) != 0)
            goto oom;
    }
    for (int k = 0; k < sig->n_outputs; k++) {
        const cs_onnx_io *io = &sig->outputs[k];
        const float *v = io->node >= 0 ? e->act[io->node] : core[CS_MODEL_INPUT - io->node];
        if (output_of(io->name, &io->layout, n, v, &out[k]) != 0) goto oom;
    }
    int onnx = !sig->inputs[0].layout.channels_last;
    for (int j = 0; j < n_nodes; j++) {
        const cs_layer *l = &m->layers[nodes[j]];
        cs_onnx_layout lay = {.rank = 4, .item = l->out, .channels_last = !onnx};
        if (output_of(l->name, &lay, n, e->act[nodes[j]], &out[sig->n_outputs + j]) != 0) goto oom;
    }
    rc = 0;
    goto done;
oom:
    cs_set_err(err, errlen, "out of memory running a batch of %d", n);
done:
    cs_exec_free(e);
    for (int k = 0; k < sig->n_inputs; k++) free(core[k]);
    return rc;
}
