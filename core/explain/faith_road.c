/*
 * faith_road.c - ROAD, remove and debias (Rong et al., ICML 2022; see faith.h): pixels
 * removed along the ranking are filled by noisy linear imputation, so that what the
 * model sees is not the shape of the removed area.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faith.h"
#include "rng.h"

/* LAPACK's banded symmetric positive definite solver, as OpenBLAS exports it (see
 * cam_eigencam.c); the trailing length is the hidden length of uplo. */
void spbsv_(const char *uplo, const int *n, const int *kd, const int *nrhs, float *ab, const int *ldab, float *b,
            const int *ldb, int *info, size_t uplo_len);

static const struct {
    int dy, dx;
    float w;
} NEIGHBOURS[8] = {{-1, -1, 1.0f / 12}, {-1, 0, 1.0f / 6}, {-1, 1, 1.0f / 12}, {0, -1, 1.0f / 6},
                   {0, 1, 1.0f / 6},    {1, -1, 1.0f / 12}, {1, 0, 1.0f / 6},  {1, 1, 1.0f / 12}};

int cs_road_impute(const cs_explainer *x, float *img, const uint8_t *removed, float noise, uint64_t seed)
{
    const cs_model *m = x->model;
    const int H = m->input.h, W = m->input.w, C = m->input.c, hw = H * W;
    int *idx = malloc((size_t)hw * sizeof(int));
    if (!idx) return -1;
    int n = 0, kd = 0;
    for (int i = 0; i < hw; i++) idx[i] = removed[i] ? n++ : -1;
    if (!n) {
        free(idx);
        return 0;
    }
    /* Bandwidth: the farthest later unknown neighbour of an unknown, in unknown order. */
    for (int i = 0; i < hw; i++) {
        if (idx[i] < 0) continue;
        int y = i / W, xx = i % W;
        for (int k = 0; k < 8; k++) {
            int yy = y + NEIGHBOURS[k].dy, xq = xx + NEIGHBOURS[k].dx;
            if (yy < 0 || yy >= H || xq < 0 || xq >= W || idx[yy * W + xq] < 0) continue;
            if (idx[yy * W + xq] - idx[i] > kd) kd = idx[yy * W + xq] - idx[i];
        }
    }
    const int ldab = kd + 1;
    float *ab = calloc((size_t)ldab * n, sizeof(float)), *b = calloc((size_t)n * C, sizeof(float));
    if (!ab || !b) {
        free(idx);
        free(ab);
        free(b);
        return -1;
    }
    /* Row p: (sum of its neighbours' weights) v_p - sum over removed q of w v_q = sum over
     * kept q of w v_q. Upper band, column-major: A(i, j) at ab[kd + i - j + j * ldab], i <= j. */
    for (int i = 0; i < hw; i++) {
        int p = idx[i];
        if (p < 0) continue;
        int y = i / W, xx = i % W;
        float diag = 0;
        for (int k = 0; k < 8; k++) {
            int yy = y + NEIGHBOURS[k].dy, xq = xx + NEIGHBOURS[k].dx;
            if (yy < 0 || yy >= H || xq < 0 || xq >= W) continue;
            int j = yy * W + xq, q = idx[j];
            float w = NEIGHBOURS[k].w;
            diag += w;
            if (q < 0) {
                for (int c = 0; c < C; c++) b[(size_t)c * n + p] += w * img[(size_t)j * C + c];
            } else if (q > p) {
                ab[(size_t)kd + p - q + (size_t)q * ldab] = -w;
            }
        }
        ab[(size_t)kd + (size_t)p * ldab] = diag;
    }
    int info = 0;
    spbsv_("U", &n, &kd, &C, ab, &ldab, b, &n, &info, 1);
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (int i = 0; i < hw; i++) {
        int p = idx[i];
        if (p < 0) continue;
        for (int c = 0; c < C; c++) {
            float bl = cs_explainer_black(x, c), range = cs_explainer_white(x, c) - bl;
            /* A removed area with no kept pixel beside it has no solution: black. */
            float v = info == 0 ? b[(size_t)c * n + p] : bl;
            img[(size_t)i * C + c] = v + noise * range * (float)cs_rng_normal(&r);
        }
    }
    free(idx);
    free(ab);
    free(b);
    return 0;
}

int cs_faith_road(cs_explainer *x, const cs_explain_map *map, const int *rank, const cs_faith_params *p,
                  cs_faith_result *out)
{
    const cs_model *m = x->model;
    const int hw = m->input.h * m->input.w;
    const size_t per = cs_shape_size(m->input);
    cs_explain_params ep;
    cs_explain_params_default(&ep);
    ep.batch = p->batch;
    const int n = 2 * CS_ROAD_POINTS;
    float *imgs = malloc((size_t)n * per * sizeof(float)), *prob = malloc((size_t)n * sizeof(float));
    uint8_t *removed = malloc((size_t)hw);
    cs_explain_map count = {0};
    int rc = -1;
    if (!imgs || !prob || !removed) goto out;
    for (int f = 0; f < CS_ROAD_POINTS; f++) {
        const double frac = (f + 1) / 10.0;
        const int k = (int)(frac * hw + 0.5);
        out->road_fraction[f] = (float)frac;
        for (int order = 0; order < 2; order++) { /* MoRF, then LeRF */
            memset(removed, 0, (size_t)hw);
            for (int r = 0; r < k; r++) removed[order == 0 ? rank[r] : rank[hw - 1 - r]] = 1;
            float *img = imgs + (size_t)(2 * f + order) * per;
            memcpy(img, x->x, per * sizeof(float));
            if (cs_road_impute(x, img, removed, p->road_noise, p->seed + (uint64_t)(2 * f + order)) != 0) goto out;
        }
    }
    if (cs_explainer_scores(x, &ep, imgs, n, map->class_index, CS_SCORE_PROBABILITY, prob, &count) != 0) goto out;
    double s = 0;
    for (int f = 0; f < CS_ROAD_POINTS; f++) {
        out->road_morf[f] = prob[2 * f];
        out->road_lerf[f] = prob[2 * f + 1];
        s += (prob[2 * f + 1] - prob[2 * f]) / 2.0;
    }
    out->road = s / CS_ROAD_POINTS;
    out->forwards += count.forwards;
    rc = 0;
out:
    free(imgs);
    free(prob);
    free(removed);
    return rc;
}
