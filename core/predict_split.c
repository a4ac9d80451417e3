/*
 * predict_split.c - an inverted residual block split by its wide channels
 * (predict_split.h).
 */
#include "predict_split.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

/* A depthwise output of at most this many pixels: there the three barriers of a block
 * run conv by conv cost as much as a conv's share of work (bench/onnx_models: the
 * 28x28 blocks of MobileNetV2 gain nothing, the 14x14 and 7x7 ones do). */
#define SMALL_PIXELS (16 * 16)

/* The first wide channel of part k: shares of multiples of 16, the last one the rest. */
static int part_lo(int wide, int parts, int k)
{
    return k == parts ? wide : (int)((long)wide * k / parts) / 16 * 16;
}

void cs_fast_split_free(cs_fast_split *s)
{
    if (!s) return;
    for (int k = 0; k < CS_SPLIT_MAX_PARTS; k++)
        for (int st = 0; st < CS_BAND_STAGES; st++) cs_onednn_conv_free(s->slice[k][st]);
    free(s);
}

size_t cs_fast_split_kernel_bytes(const cs_fast_split *s)
{
    size_t total = 0;
    for (int k = 0; s && k < s->parts; k++)
        for (int st = 0; st < CS_BAND_STAGES; st++) total += cs_onednn_conv_kernel_bytes(s->slice[k][st]);
    return total;
}

cs_fast_split *cs_fast_split_make(const cs_fast_stage stage[CS_BAND_STAGES], int threads)
{
    const size_t wide = cs_fast_block_wide_bytes(stage);
    if (threads < 2 || !wide || wide >= CS_BAND_WIDE_BYTES || !stage[CS_BAND_EXPAND].conv ||
        !cs_fast_pointwise(cs_onednn_conv_geom(stage[CS_BAND_EXPAND].conv)))
        return NULL;
    const cs_conv2d_geom *gx = cs_onednn_conv_geom(stage[CS_BAND_EXPAND].conv),
                         *gd = cs_onednn_conv_geom(stage[CS_BAND_DEPTHWISE].conv),
                         *gp = cs_onednn_conv_geom(stage[CS_BAND_PROJECT].conv);
    const size_t out_bytes = (size_t)gp->oh * gp->ow * gp->oc * sizeof(float);
    int parts = threads < CS_SPLIT_MAX_PARTS ? threads : CS_SPLIT_MAX_PARTS;
    if (parts > gx->oc / 32) parts = gx->oc / 32; /* shares of 32 channels or more */
    /* The partial sums wait in the workers' rooms for the bands (predict_bands.h). */
    if (parts < 2 || (long)gd->oh * gd->ow > SMALL_PIXELS || cs_onednn_conv_activated(stage[CS_BAND_PROJECT].conv) ||
        (size_t)(parts - 1) * out_bytes > CS_BAND_WIDE_BYTES)
        return NULL;
    cs_fast_split *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    memcpy(s->stage, stage, sizeof s->stage);
    s->parts = parts;
    char err[200];
    for (int k = 0; k < parts; k++) {
        const int lo = part_lo(gx->oc, parts, k), hi = part_lo(gx->oc, parts, k + 1);
        s->slice[k][CS_BAND_EXPAND] = cs_onednn_conv_slice(stage[CS_BAND_EXPAND].conv, CS_SLICE_OUTPUTS, lo, hi, 0, err, sizeof err);
        s->slice[k][CS_BAND_DEPTHWISE] =
            cs_onednn_conv_slice(stage[CS_BAND_DEPTHWISE].conv, CS_SLICE_OUTPUTS, lo, hi, 0, err, sizeof err);
        s->slice[k][CS_BAND_PROJECT] =
            cs_onednn_conv_slice(stage[CS_BAND_PROJECT].conv, CS_SLICE_INPUTS, lo, hi, k == 0, err, sizeof err);
        for (int st = 0; st < CS_BAND_STAGES; st++)
            if (!s->slice[k][st]) {
                cs_fast_split_free(s);
                return NULL;
            }
    }
    return s;
}

typedef struct {
    cs_exec *e;
    const cs_fast_split *s;
    const float *x, *addend;
    float *y;
    size_t wide_x, wide_d; /* floats of a part's expand and depthwise outputs (one image) */
    float *partial[CS_SPLIT_MAX_PARTS]; /* part k > 0's sums, for every image */
    atomic_int failed;
} job;

/* Part k on all of the batch's images, with the worker's room for its wide tensors. */
static void run_part(void *ctx, long begin, long end, int worker)
{
    job *j = ctx;
    const cs_fast_split *s = j->s;
    const cs_conv2d_geom *gx = cs_onednn_conv_geom(s->stage[CS_BAND_EXPAND].conv),
                         *gd = cs_onednn_conv_geom(s->stage[CS_BAND_DEPTHWISE].conv),
                         *gp = cs_onednn_conv_geom(s->stage[CS_BAND_PROJECT].conv);
    const size_t in_image = (size_t)gx->ih * gx->iw * gx->ic, out_image = (size_t)gp->oh * gp->ow * gp->oc;
    float *wx = j->e->band_tmp[worker], *wd = wx + j->wide_x;
    cs_scratch *sc = &j->e->scratch;
    for (long k = begin; k < end && !atomic_load(&j->failed); k++)
        for (int i = 0; i < j->e->batch; i++) {
            cs_onednn_conv *const *c = s->slice[k];
            float *out = k ? j->partial[k] + i * out_image : j->y + i * out_image;
            const float *add = k == 0 && j->addend ? j->addend + i * out_image : NULL;
            if (cs_onednn_conv_rows(c[CS_BAND_EXPAND], 0, gx->oh, j->x + i * in_image, NULL, wx, sc, worker) != 0 ||
                cs_onednn_conv_rows(c[CS_BAND_DEPTHWISE], 0, gd->oh, wx, NULL, wd, sc, worker) != 0 ||
                cs_onednn_conv_rows(c[CS_BAND_PROJECT], 0, gp->oh, wd, add, out, sc, worker) != 0) {
                atomic_store(&j->failed, 1);
                return;
            }
        }
}

int cs_predict_split(cs_exec *e, const cs_fast_split *s, const float *x, const float *addend, float *y)
{
    const int parts = s->parts, n = e->batch;
    if (n >= parts || cs_parallel_parts() < parts || e->scratch.workers < parts) return -1;
    const cs_conv2d_geom *gx = cs_onednn_conv_geom(s->stage[CS_BAND_EXPAND].conv),
                         *gd = cs_onednn_conv_geom(s->stage[CS_BAND_DEPTHWISE].conv),
                         *gp = cs_onednn_conv_geom(s->stage[CS_BAND_PROJECT].conv);
    job j = {.e = e, .s = s, .x = x, .addend = addend, .y = y};
    int widest = 0;
    for (int k = 0; k < parts; k++) {
        const int w = cs_onednn_conv_geom(s->slice[k][CS_BAND_EXPAND])->oc;
        if (w > widest) widest = w;
        for (int st = 0; st < CS_BAND_STAGES; st++)
            if (cs_onednn_conv_rows_prepare(s->slice[k][st], 0, cs_onednn_conv_geom(s->slice[k][st])->oh, &e->scratch) != 0)
                return -1;
    }
    /* Rounded to whole cache lines, so that each tensor starts on one. */
    j.wide_x = ((size_t)gx->oh * gx->ow * widest + 15) / 16 * 16;
    j.wide_d = ((size_t)gd->oh * gd->ow * widest + 15) / 16 * 16;
    const size_t out_image = (size_t)gp->oh * gp->ow * gp->oc;
    /* Part k's sums go to worker k's room past its wide tensors, whichever worker runs it. */
    if (cs_predict_block_tmp(e, j.wide_x + j.wide_d + (size_t)n * out_image) != 0) return -1;
    for (int k = 1; k < parts; k++) j.partial[k] = e->band_tmp[k] + j.wide_x + j.wide_d;
    cs_parallel_run(parts, 1, parts, run_part, &j);
    if (atomic_load(&j.failed)) return -1;
    for (int k = 1; k < parts; k++) {
        const float *restrict from = j.partial[k];
        float *restrict to = y;
        for (size_t i = 0; i < (size_t)n * out_image; i++) to[i] += from[i];
    }
    return 0;
}
