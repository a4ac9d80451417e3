/*
 * predict_bands.c - an inverted residual block run band by band (predict_bands.h).
 */
#include "predict_bands.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

/* A band's rows of the expand conv and of the depthwise conv together: they should
 * leave the core's L2 cache (1-2 MB) room for the kernels and the narrow tensors. (A
 * budget for the expand rows alone let a stride-1 block's depthwise rows take as much
 * again, and the band then spilled out of L2.) */
#define BAND_BYTES ((size_t)1024 * 1024)

int cs_fast_pointwise(const cs_conv2d_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->groups == 1 && !g->pt && !g->pl && !g->pb &&
           !g->pr;
}

static const cs_conv2d_geom *stage_geom(const cs_fast_stage *st)
{
    return st->conv ? cs_onednn_conv_geom(st->conv) : &st->pooled->g;
}

size_t cs_fast_block_wide_bytes(const cs_fast_stage stage[CS_BAND_STAGES])
{
    if (!stage[0].conv && !(stage[0].pooled && stage[0].pooled->pool == 1)) return 0;
    for (int k = 0; k < CS_BAND_STAGES; k++)
        if ((k > 0 && !stage[k].conv) || (stage[k].conv && k < CS_BAND_PROJECT && cs_onednn_conv_sums(stage[k].conv)))
            return 0;
    const cs_conv2d_geom *x = stage_geom(&stage[0]), *d = stage_geom(&stage[1]), *p = stage_geom(&stage[2]);
    if (x->groups != 1 || !cs_fast_pointwise(p) || d->groups != d->ic || d->oc != d->ic || d->ic != x->oc ||
        p->ic != d->oc || d->ih != x->oh || d->iw != x->ow || p->ih != d->oh || p->iw != d->ow)
        return 0;
    return (size_t)x->oh * x->ow * x->oc * sizeof(float);
}

/* Bytes of a band of `rows` depthwise rows (d_row bytes each) and the expand rows
 * (row bytes each) they read. */
static size_t band_bytes(const cs_conv2d_geom *d, size_t row, size_t d_row, int rows)
{
    return (size_t)(rows * d->sh + (d->kh - 1) * d->dh + 1) * row + (size_t)rows * d_row;
}

int cs_fast_bands_fit(const cs_fast_stage stage[CS_BAND_STAGES], cs_fast_bands *b)
{
    const size_t wide = cs_fast_block_wide_bytes(stage);
    if (wide < CS_BAND_WIDE_BYTES) return 0;
    const cs_conv2d_geom *x = stage_geom(&stage[0]), *d = stage_geom(&stage[1]);
    const size_t row = (size_t)x->ow * x->oc * sizeof(float), d_row = (size_t)d->ow * d->oc * sizeof(float);
    /* The most depthwise rows that fit the band's bytes with the expand rows they read
     * (a band of one row must: cs_predict_bands_bytes_bound counts on it). */
    if (band_bytes(d, row, d_row, 1) > BAND_BYTES) return 0;
    int rows = 1;
    while (rows < d->oh && band_bytes(d, row, d_row, rows + 1) <= BAND_BYTES) rows++;
    /* Bands of even heights: no short one at the bottom. */
    const int bands = (d->oh + rows - 1) / rows;
    rows = (d->oh + bands - 1) / bands;
    memcpy(b->stage, stage, sizeof b->stage);
    b->rows = rows;
    return 1;
}

size_t cs_predict_bands_bytes_bound(const cs_model *m)
{
    size_t widest = 0; /* a band's depthwise rows: at most its expand rows' bytes */
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        if ((l->kind == CS_CONV2D && l->cfg.groups > 1) || l->kind == CS_DEPTHWISE_CONV2D) widest = BAND_BYTES;
    }
    /* The expand rows (a band's, and the rows a window keeps: at most twice a band) and
     * the depthwise rows. */
    return widest ? (size_t)cs_parallel_threads() * 3 * (widest + 64 * sizeof(float)) : 0;
}

typedef struct {
    cs_exec *e;
    const cs_fast_bands *b;
    const float *x, *addend;
    float *y;
    int parts, bands;
    size_t tmp_x; /* floats of the expand rows a worker keeps; the depthwise rows follow */
    atomic_int failed;
} job;

static cs_onednn_conv *conv_of(const cs_fast_bands *b, int k) { return b->stage[k].conv; }

/* The first stage's output rows [oy0, oy1) of one image x (from its first row) into y;
 * with prepare set, makes what they will run instead. 0, or -1. */
static int first_rows(const cs_fast_stage *st, int oy0, int oy1, const float *x, float *y, cs_scratch *s, int worker,
                      int prepare)
{
    if (!st->conv) {
        if (!prepare) cs_conv_act_pool_rows(st->pooled, x, oy0, oy1, y);
        return 0;
    }
    if (prepare) return cs_onednn_conv_rows_prepare(st->conv, oy0, oy1, s);
    const cs_conv2d_geom *g = cs_onednn_conv_geom(st->conv);
    int iy0, iy1;
    cs_onednn_conv_band_input(st->conv, oy0, oy1, &iy0, &iy1);
    return cs_onednn_conv_rows(st->conv, oy0, oy1, x + (size_t)iy0 * g->iw * g->ic, NULL, y, s, worker);
}

/* Bands [k0, k1) of one image. With prepare set, makes what they will run instead of
 * running them (and returns the floats of expand rows they keep at most). */
static long run_bands(job *j, int image, int k0, int k1, int worker, int prepare)
{
    const cs_fast_bands *b = j->b;
    cs_onednn_conv *cd = conv_of(b, 1), *cp = conv_of(b, 2);
    const cs_conv2d_geom *gx = stage_geom(&b->stage[0]), *gd = cs_onednn_conv_geom(cd), *gp = cs_onednn_conv_geom(cp);
    const size_t in_row = (size_t)gx->iw * gx->ic, wide_row = (size_t)gx->ow * gx->oc, out_row = (size_t)gp->ow * gp->oc;
    const float *x = j->x + (size_t)image * gx->ih * in_row;
    const float *addend = j->addend ? j->addend + (size_t)image * gp->oh * out_row : NULL;
    float *y = j->y + (size_t)image * gp->oh * out_row;
    cs_scratch *s = &j->e->scratch;
    float *tx = prepare ? NULL : j->e->band_tmp[worker], *td = tx ? tx + j->tmp_x : NULL;
    long most = 0;
    int have0 = 0, have1 = 0; /* the expand rows tx holds, from its start */
    for (int k = k0; k < k1; k++) {
        const int oy0 = k * b->rows, oy1 = oy0 + b->rows < gd->oh ? oy0 + b->rows : gd->oh;
        int iy0, iy1;
        cs_onednn_conv_band_input(cd, oy0, oy1, &iy0, &iy1);
        /* Slide the window down to iy0, keeping the rows this band shares with the last. */
        const int keep = k > k0 && have1 > iy0 ? have1 - iy0 : 0;
        if (tx && keep && iy0 > have0) memmove(tx, tx + (size_t)(iy0 - have0) * wide_row, (size_t)keep * wide_row * sizeof *tx);
        have0 = iy0, have1 = iy0 + keep;
        if (iy1 > have1) {
            if (first_rows(&b->stage[0], have1, iy1, x, tx ? tx + (size_t)(have1 - have0) * wide_row : NULL, s, worker,
                           prepare) != 0)
                return -1;
            have1 = iy1;
        }
        if ((long)(have1 - have0) * (long)wide_row > most) most = (long)(have1 - have0) * (long)wide_row;
        if (prepare) {
            if (cs_onednn_conv_rows_prepare(cd, oy0, oy1, s) != 0 || cs_onednn_conv_rows_prepare(cp, oy0, oy1, s) != 0)
                return -1;
            continue;
        }
        if (cs_onednn_conv_rows(cd, oy0, oy1, tx, NULL, td, s, worker) != 0 ||
            cs_onednn_conv_rows(cp, oy0, oy1, td, addend ? addend + (size_t)oy0 * out_row : NULL,
                                y + (size_t)oy0 * out_row, s, worker) != 0)
            return -1;
    }
    return most;
}

static void run_parts(void *ctx, long begin, long end, int worker)
{
    job *j = ctx;
    for (long t = begin; t < end && !atomic_load(&j->failed); t++) {
        const int part = (int)(t % j->parts);
        const int k0 = (int)((long)j->bands * part / j->parts), k1 = (int)((long)j->bands * (part + 1) / j->parts);
        if (run_bands(j, (int)(t / j->parts), k0, k1, worker, 0) < 0) atomic_store(&j->failed, 1);
    }
}

int cs_predict_block_tmp(cs_exec *e, size_t floats)
{
    if (floats <= e->band_tmp_floats) return 0;
    for (int w = 0; w < CS_MAX_WORKERS; w++) {
        free(e->band_tmp[w]);
        e->band_tmp[w] = NULL;
    }
    e->band_tmp_floats = 0;
    for (int w = 0; w < e->scratch.workers; w++)
        if (!(e->band_tmp[w] = cs_floats_new(floats))) return -1;
    e->band_tmp_floats = floats;
    return 0;
}

int cs_predict_bands(cs_exec *e, const cs_fast_bands *b, const float *x, const float *addend, float *y)
{
    const cs_conv2d_geom *gd = cs_onednn_conv_geom(conv_of(b, 1));
    job j = {.e = e, .b = b, .x = x, .addend = addend, .y = y};
    j.bands = (gd->oh + b->rows - 1) / b->rows;
    /* One image's bands split over the workers when there are fewer images than them. */
    int parts = cs_parallel_parts();
    if (parts > CS_MAX_WORKERS) parts = CS_MAX_WORKERS;
    if (parts > e->scratch.workers) parts = e->scratch.workers;
    j.parts = e->batch >= parts ? 1 : parts < j.bands ? parts : j.bands;
    long most = 0;
    for (int part = 0; part < j.parts; part++) {
        const long m = run_bands(&j, 0, (int)((long)j.bands * part / j.parts), (int)((long)j.bands * (part + 1) / j.parts), 0, 1);
        if (m < 0) return -1;
        if (m > most) most = m;
    }
    j.tmp_x = ((size_t)most + 15) / 16 * 16;
    if (cs_predict_block_tmp(e, j.tmp_x + (size_t)b->rows * gd->ow * gd->oc) != 0) return -1;
    cs_parallel_run((long)e->batch * j.parts, 1, parts, run_parts, &j);
    return atomic_load(&j.failed) ? -1 : 0;
}
