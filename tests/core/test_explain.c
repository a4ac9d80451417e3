/*
 * test_explain.c - every explanation method against its definition, computed here
 * again in double precision on a small network whose every quantity is written out
 * by hand: input 5x5x2 -> conv 3x3 (F filters, valid) -> ReLU-like node (LeakyReLU
 * 0.3, ReLU, Activation(relu), or a relu fused into the conv) -> flatten -> dense 3,
 * softmax. The map node A is the activation's output (3x3xF), so d(logit)/dA is the
 * dense kernel itself and every CAM formula is a few sums.
 *
 * Also: Integrated Gradients' completeness on the notebook's network at 128 steps
 * (every baseline), the faithfulness numbers against the same curves recomputed
 * here, ROAD's imputation against its equations, Spearman's rho on a hand case, the
 * cascading randomisation check (the clone changes, the model does not; on the
 * notebook's network guided backpropagation barely changes while Grad-CAM does, as
 * Adebayo et al. found), and the parameters that are refused.
 */
#include "dataset.h"
#include "explain/explain.h"
#include "explain/faith.h"
#include "layer_ops.h"
#include "layers/kernels.h"
#include "model_file.h"
#include "rng.h"
#include "test.h"

enum { TH = 5, TW = 5, TC = 2, OH = 3, OW = 3, NCLS = 3, HW = OH * OW, NIN = TH * TW * TC };
enum { ACT_LEAKY, ACT_RELU, ACT_ACTIVATION, ACT_FUSED };

typedef struct {
    cs_model *m;
    int F, act, cam, dense;
    double alpha;
} tiny;

static tiny tiny_build(int F, int act, uint64_t seed)
{
    tiny t = {.F = F, .act = act, .alpha = act == ACT_LEAKY ? 0.3 : 0.0};
    char err[200];
    t.m = cs_model_new("tiny", (cs_shape){TH, TW, TC});
    cs_layer_config conv = {.filters = F, .kernel = 3, .stride = 1,
                            .activation = act == ACT_FUSED ? CS_ACT_RELU : CS_ACT_LINEAR};
    cs_layer_config leaky = {.alpha = 0.3f}, none = {0}, relu = {.actf = CS_ACTF_RELU};
    cs_layer_config dense = {.units = NCLS, .activation = CS_ACT_SOFTMAX};
    int ok = cs_model_add(t.m, "conv", CS_CONV2D, &conv, err, sizeof err) >= 0;
    if (act == ACT_LEAKY) ok = ok && cs_model_add(t.m, "act", CS_LEAKY_RELU, &leaky, err, sizeof err) >= 0;
    if (act == ACT_RELU) ok = ok && cs_model_add(t.m, "act", CS_RELU, &none, err, sizeof err) >= 0;
    if (act == ACT_ACTIVATION) ok = ok && cs_model_add(t.m, "act", CS_ACTIVATION, &relu, err, sizeof err) >= 0;
    t.cam = act == ACT_FUSED ? 0 : 1;
    ok = ok && cs_model_add(t.m, "flatten", CS_FLATTEN, &none, err, sizeof err) >= 0;
    t.dense = t.m->n_layers;
    ok = ok && cs_model_add(t.m, "dense", CS_DENSE, &dense, err, sizeof err) >= 0 && cs_model_finish(t.m) == 0;
    if (!ok) {
        fprintf(stderr, "setup: tiny model: %s\n", err);
        exit(99);
    }
    /* Weights of either sign, biases that put some pre-activations below zero. */
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (size_t i = 0; i < t.m->n_param_floats; i++) t.m->param_block[i] = (float)(cs_rng_uniform(&r) * 2 - 1) * 0.7f;
    return t;
}

static void tiny_image(float *x, uint64_t seed)
{
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (int i = 0; i < NIN; i++) x[i] = (float)cs_rng_uniform(&r);
}

/* ---- the network in double precision -------------------------------------------- */

typedef struct {
    double Z[HW * 32], A[HW * 32], logit[NCLS], prob[NCLS];
} fwd;

static const float *kern(const tiny *t) { return t->m->layers[0].params[0].data; }
static const float *dense_w(const tiny *t) { return t->m->layers[t->dense].params[0].data; }

static void ref_forward(const tiny *t, const double *x, fwd *f)
{
    const int F = t->F;
    const float *K = kern(t), *b = t->m->layers[0].params[1].data;
    for (int y = 0; y < OH; y++)
        for (int xx = 0; xx < OW; xx++)
            for (int k = 0; k < F; k++) {
                double s = b[k];
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++)
                        for (int c = 0; c < TC; c++)
                            s += x[((y + i) * TW + xx + j) * TC + c] * K[((i * 3 + j) * TC + c) * F + k];
                int p = (y * OW + xx) * F + k;
                f->Z[p] = s;
                f->A[p] = s > 0 ? s : t->alpha * s;
            }
    const float *Wd = dense_w(t), *bd = t->m->layers[t->dense].params[1].data;
    double mx = -1e300, z = 0;
    for (int c = 0; c < NCLS; c++) {
        double s = bd[c];
        for (int p = 0; p < HW * F; p++) s += f->A[p] * Wd[p * NCLS + c];
        f->logit[c] = s;
        if (s > mx) mx = s;
    }
    for (int c = 0; c < NCLS; c++) z += exp(f->logit[c] - mx);
    for (int c = 0; c < NCLS; c++) f->prob[c] = exp(f->logit[c] - mx) / z;
}

static double ref_score(const tiny *t, const double *x, int c, int kind)
{
    fwd f;
    ref_forward(t, x, &f);
    return kind == CS_SCORE_LOGIT ? f.logit[c] : f.prob[c];
}

/* d(score)/dA for the forward f. */
static void ref_grad_a(const tiny *t, const fwd *f, int c, int kind, double *g)
{
    const float *Wd = dense_w(t);
    for (int p = 0; p < HW * t->F; p++) {
        if (kind == CS_SCORE_LOGIT) g[p] = Wd[p * NCLS + c];
        else {
            double s = 0;
            for (int j = 0; j < NCLS; j++) s += f->prob[c] * ((j == c) - f->prob[j]) * Wd[p * NCLS + j];
            g[p] = s;
        }
    }
}

/* d(score)/dx, through guided backpropagation when asked. */
static void ref_grad_x(const tiny *t, const double *x, int c, int kind, int guided, double *dx)
{
    fwd f;
    ref_forward(t, x, &f);
    double gA[HW * 32];
    ref_grad_a(t, &f, c, kind, gA);
    const float *K = kern(t);
    memset(dx, 0, NIN * sizeof(double));
    for (int y = 0; y < OH; y++)
        for (int xx = 0; xx < OW; xx++)
            for (int k = 0; k < t->F; k++) {
                int p = (y * OW + xx) * t->F + k;
                double g = guided && gA[p] < 0 ? 0 : gA[p];
                g *= f.Z[p] > 0 ? 1 : t->alpha;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++)
                        for (int ch = 0; ch < TC; ch++)
                            dx[((y + i) * TW + xx + j) * TC + ch] += g * K[((i * 3 + j) * TC + ch) * t->F + k];
            }
}

static void to_double(const float *x, double *d, int n)
{
    for (int i = 0; i < n; i++) d[i] = x[i];
}

/* cv2 INTER_LINEAR (half-pixel centres, clamped at the edges), one plane. */
static void ref_resize(const double *src, int sh, int sw, double *dst, int dh, int dw)
{
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            double sy = (y + 0.5) * sh / dh - 0.5, sx = (x + 0.5) * sw / dw - 0.5;
            if (sy < 0) sy = 0;
            if (sx < 0) sx = 0;
            int y0 = (int)sy, x0 = (int)sx;
            double fy = sy - y0, fx = sx - x0;
            if (y0 >= sh - 1) y0 = sh - 1, fy = 0;
            if (x0 >= sw - 1) x0 = sw - 1, fx = 0;
            int y1 = y0 + 1 < sh ? y0 + 1 : y0, x1 = x0 + 1 < sw ? x0 + 1 : x0;
            dst[y * dw + x] = (1 - fy) * ((1 - fx) * src[y0 * sw + x0] + fx * src[y0 * sw + x1]) +
                              fy * ((1 - fx) * src[y1 * sw + x0] + fx * src[y1 * sw + x1]);
        }
}

/* ---- running the code under test ------------------------------------------------- */

static float BLACK[TC] = {-0.25f, 0.1f}, WHITE[TC] = {1.0f, 1.2f};

static int run(const tiny *t, const float *x, const char *method, const cs_explain_params *p, cs_explain_map *out)
{
    char err[300];
    cs_explainer ex;
    if (cs_explainer_init(&ex, t->m, x, NULL, err, sizeof err) != 0) return -1;
    ex.black = BLACK;
    ex.white = WHITE;
    int rc = cs_explain_run(&ex, cs_explain_find(method), p, out, err, sizeof err);
    if (rc) fprintf(stderr, "%s: %s\n", method, err);
    cs_explainer_free(&ex);
    return rc;
}

/* out's map against ref (n values): each within tol of the reference's largest magnitude. */
static void check_map(const float *got, const double *ref, int n, double tol, const char *what)
{
    double scale = 0, worst = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(got[i] - ref[i]));
    CHECK(scale > 0, "%s: the reference map is all zero (a test that cannot fail)", what);
    CHECK(worst <= tol * scale, "%s: max difference %.3g of scale %.3g (tol %g)", what, worst, scale, tol);
}

/* Float sums of cubes against double ones: a relative 1e-4. */
static void check_cam(const float *got, const double *ref, int n, const char *what)
{
    check_map(got, ref, n, 1e-4, what);
}

/* ReLU(sum_k w_k A_k) over the positions. */
static void ref_combine(const double *A, const double *w, int F, double *L)
{
    for (int p = 0; p < HW; p++) {
        double s = 0;
        for (int k = 0; k < F; k++) s += w[k] * A[p * F + k];
        L[p] = s > 0 ? s : 0;
    }
}

typedef enum { GRADCAM, GRADCAMPP, XGRADCAM, HIRESCAM, LAYERCAM } grad_cam_kind;

static void ref_grad_cam(const tiny *t, const float *x, int c, int kind, grad_cam_kind which, double *L)
{
    double xd[NIN], g[HW * 32], w[32] = {0};
    fwd f;
    to_double(x, xd, NIN);
    ref_forward(t, xd, &f);
    ref_grad_a(t, &f, c, kind, g);
    const int F = t->F;
    for (int k = 0; k < F; k++) {
        double asum = 0, ga = 0, pp = 0, gs = 0;
        for (int p = 0; p < HW; p++) asum += f.A[p * F + k];
        for (int p = 0; p < HW; p++) {
            double gi = g[p * F + k], a = f.A[p * F + k];
            gs += gi;
            ga += gi * a;
            double den = 2 * gi * gi + asum * gi * gi * gi;
            if (den != 0 && gi > 0) pp += gi * gi / den * gi;
        }
        w[k] = which == GRADCAM ? gs / HW : which == GRADCAMPP ? pp : asum != 0 ? ga / asum : 0;
    }
    if (which == HIRESCAM || which == LAYERCAM) {
        for (int p = 0; p < HW; p++) {
            double s = 0;
            for (int k = 0; k < F; k++) {
                double gi = g[p * F + k];
                if (which == LAYERCAM && gi < 0) gi = 0;
                s += gi * f.A[p * F + k];
            }
            L[p] = s > 0 ? s : 0;
        }
        return;
    }
    ref_combine(f.A, w, F, L);
}

static void test_gradient_cams_match_their_formulas(void)
{
    static const char *const names[] = {"gradcam", "gradcampp", "xgradcam", "hirescam", "layercam"};
    const int acts[] = {ACT_LEAKY, ACT_RELU, ACT_ACTIVATION, ACT_FUSED};
    for (int a = 0; a < 4; a++) {
        tiny t = tiny_build(4, acts[a], 11 + a);
        float x[NIN];
        tiny_image(x, 5 + a);
        for (int kind = 0; kind < 2; kind++)
            for (int c = 0; c < NCLS; c++)
                for (int which = 0; which < 5; which++) {
                    cs_explain_params p;
                    cs_explain_params_default(&p);
                    p.class_index = c;
                    p.score_kind = kind;
                    cs_explain_map out;
                    if (run(&t, x, names[which], &p, &out) != 0) {
                        CHECK(0, "%s runs", names[which]);
                        continue;
                    }
                    double L[HW];
                    ref_grad_cam(&t, x, c, kind, (grad_cam_kind)which, L);
                    char what[96];
                    snprintf(what, sizeof what, "%s act %d class %d score %d", names[which], acts[a], c, kind);
                    CHECK(out.h == OH && out.w == OW && out.layer == t.cam, "%s: 3x3 at the activation", what);
                    double mx = 0;
                    for (int i = 0; i < HW; i++) mx = fmax(mx, L[i]);
                    if (mx > 0) check_cam(out.map, L, HW, what);
                    else CHECK(out.all_zero, "%s: all zero when the reference is", what);
                    cs_explain_map_free(&out);
                }
        cs_model_free(t.m);
    }
}

/* The masked inputs' scores, softmax over channels, as the Score-CAM paper writes it. */
static void test_scorecam_matches_its_formula_in_any_batch(void)
{
    tiny t = tiny_build(5, ACT_LEAKY, 21);
    float x[NIN];
    tiny_image(x, 22);
    double xd[NIN];
    to_double(x, xd, NIN);
    fwd f;
    ref_forward(&t, xd, &f);
    const int F = t.F, c = 1;
    double S[32], w[32], mx = -1e300, z = 0;
    for (int k = 0; k < F; k++) {
        double plane[HW], up[TH * TW], lo = 1e300, hi = -1e300, img[NIN];
        for (int p = 0; p < HW; p++) plane[p] = f.A[p * F + k];
        ref_resize(plane, OH, OW, up, TH, TW);
        for (int i = 0; i < TH * TW; i++) lo = fmin(lo, up[i]), hi = fmax(hi, up[i]);
        for (int i = 0; i < TH * TW; i++)
            for (int ch = 0; ch < TC; ch++)
                img[i * TC + ch] = BLACK[ch] + (up[i] - lo) / (hi - lo) * (xd[i * TC + ch] - BLACK[ch]);
        S[k] = ref_score(&t, img, c, CS_SCORE_LOGIT);
        mx = fmax(mx, S[k]);
    }
    for (int k = 0; k < F; k++) z += exp(S[k] - mx);
    for (int k = 0; k < F; k++) w[k] = exp(S[k] - mx) / z;
    double L[HW];
    ref_combine(f.A, w, F, L);
    for (int batch = 1; batch <= 8; batch += 3) {
        cs_explain_params p;
        cs_explain_params_default(&p);
        p.class_index = c;
        p.batch = batch;
        cs_explain_map out;
        CHECK(run(&t, x, "scorecam", &p, &out) == 0, "scorecam runs");
        char what[48];
        snprintf(what, sizeof what, "scorecam batch %d", batch);
        check_map(out.map, L, HW, 1e-5, what);
        CHECK(out.forwards == 1 + F, "%s: one masked forward per channel (%ld)", what, out.forwards);
        cs_explain_map_free(&out);
    }
    cs_model_free(t.m);
}

/* Ablation: the nodes above A run again with one channel zeroed. */
static void test_ablationcam_matches_its_formula(void)
{
    tiny t = tiny_build(4, ACT_RELU, 31);
    float x[NIN];
    tiny_image(x, 32);
    double xd[NIN];
    to_double(x, xd, NIN);
    fwd f;
    ref_forward(&t, xd, &f);
    const int F = t.F;
    const float *Wd = dense_w(&t), *bd = t.m->layers[t.dense].params[1].data;
    for (int c = 0; c < NCLS; c++) {
        double w[32], L[HW];
        for (int k = 0; k < F; k++) {
            double s = bd[c];
            for (int p = 0; p < HW * F; p++)
                if (p % F != k) s += f.A[p] * Wd[p * NCLS + c];
            w[k] = (f.logit[c] - s) / f.logit[c];
        }
        ref_combine(f.A, w, F, L);
        cs_explain_params p;
        cs_explain_params_default(&p);
        p.class_index = c;
        p.batch = 3; /* channels in batches that do not divide them */
        cs_explain_map out;
        CHECK(run(&t, x, "ablationcam", &p, &out) == 0, "ablationcam runs");
        double mx = 0;
        for (int i = 0; i < HW; i++) mx = fmax(mx, L[i]);
        if (mx > 0) check_map(out.map, L, HW, 1e-5, "ablationcam");
        else CHECK(out.all_zero, "ablationcam: all zero as the reference");
        cs_explain_map_free(&out);
    }
    cs_model_free(t.m);
}

/* Ablation-CAM on a graph with a skip connection around A: the copies must carry the
 * node the Add reads beside A's successor. Against the same ablation done one channel
 * at a time on one exec, every node's output kept as the full forward left it. */
static void test_ablationcam_around_a_skip_connection(void)
{
    char err[200];
    cs_model *m = cs_model_new("skip", (cs_shape){6, 6, 2});
    cs_layer_config c1 = {.filters = 4, .kernel = 3, .stride = 1}, c2 = {.filters = 4, .kernel = 3, .stride = 1, .pad_same = 1};
    cs_layer_config none = {0}, dense = {.units = NCLS, .activation = CS_ACT_SOFTMAX};
    int in0 = CS_MODEL_INPUT, n0 = -1, n1 = -1, n2 = -1, n3 = -1;
    int ok = (n0 = cs_model_add_node(m, "c1", CS_CONV2D, &c1, &in0, 1, err, sizeof err)) >= 0 &&
             (n1 = cs_model_add_node(m, "a", CS_RELU, &none, &n0, 1, err, sizeof err)) >= 0 &&
             (n2 = cs_model_add_node(m, "c2", CS_CONV2D, &c2, &n1, 1, err, sizeof err)) >= 0;
    int both[2] = {n2, n0};
    ok = ok && (n3 = cs_model_add_node(m, "add", CS_ADD, &none, both, 2, err, sizeof err)) >= 0 &&
         cs_model_add_node(m, "flat", CS_FLATTEN, &none, &n3, 1, err, sizeof err) >= 0 &&
         cs_model_add(m, "dense", CS_DENSE, &dense, err, sizeof err) >= 0 && cs_model_finish(m) == 0;
    CHECK(ok, "the graph: %s", err);
    if (!ok) {
        cs_model_free(m);
        return;
    }
    cs_rng r;
    cs_rng_seed(&r, 151);
    for (size_t i = 0; i < m->n_param_floats; i++) m->param_block[i] = (float)(cs_rng_uniform(&r) * 2 - 1) * 0.5f;
    float x[72];
    for (int i = 0; i < 72; i++) x[i] = (float)cs_rng_uniform(&r);
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.layer = n1;
    p.batch = 3;
    cs_explainer ex;
    cs_explain_map out;
    CHECK(cs_explainer_init(&ex, m, x, NULL, err, sizeof err) == 0 &&
              cs_explain_run(&ex, &cs_explain_ablationcam, &p, &out, err, sizeof err) == 0,
          "%s", err);
    cs_explainer_free(&ex);
    /* One channel at a time on one exec. */
    cs_exec *e = cs_exec_new(m, 1);
    const int c = out.class_index, hw = 16, k = 4;
    cs_exec_forward(e, x, 1, 0, NULL);
    const float s = cs_exec_logits(e)[c];
    float A[64], w[4];
    memcpy(A, e->act[n1], sizeof A);
    for (int j = 0; j < k; j++) {
        cs_exec_forward(e, x, 1, 0, NULL);
        for (int i = 0; i < hw; i++) e->act[n1][i * k + j] = 0;
        cs_exec_forward_from(e, x, 1, n1 + 1);
        w[j] = (s - cs_exec_logits(e)[c]) / s;
    }
    double L[16], mx = 0;
    for (int i = 0; i < hw; i++) {
        double v = 0;
        for (int j = 0; j < k; j++) v += w[j] * A[i * k + j];
        L[i] = v > 0 ? v : 0;
        mx = fmax(mx, L[i]);
    }
    if (mx > 0) check_map(out.map, L, hw, 1e-5, "ablation around a skip connection");
    else CHECK(out.all_zero, "all zero as the reference");
    cs_explain_map_free(&out);
    cs_exec_free(e);
    cs_model_free(m);
}

/* Eigen-CAM against power iteration in double, on both sides of hw = k (the solver
 * takes the smaller Gram matrix). */
static void test_eigencam_is_the_first_principal_direction(void)
{
    const int filters[] = {4, 16};
    for (int q = 0; q < 2; q++) {
        tiny t = tiny_build(filters[q], ACT_LEAKY, 41 + q);
        float x[NIN];
        tiny_image(x, 42);
        double xd[NIN];
        to_double(x, xd, NIN);
        fwd f;
        ref_forward(&t, xd, &f);
        const int F = t.F;
        double v[32], G[32 * 32];
        for (int i = 0; i < F; i++)
            for (int j = 0; j < F; j++) {
                double s = 0;
                for (int p = 0; p < HW; p++) s += f.A[p * F + i] * f.A[p * F + j];
                G[i * F + j] = s;
            }
        for (int i = 0; i < F; i++) v[i] = 1;
        for (int it = 0; it < 5000; it++) {
            double nv[32], n = 0;
            for (int i = 0; i < F; i++) {
                nv[i] = 0;
                for (int j = 0; j < F; j++) nv[i] += G[i * F + j] * v[j];
                n += nv[i] * nv[i];
            }
            for (int i = 0; i < F; i++) v[i] = nv[i] / sqrt(n);
        }
        double L[HW], sum = 0;
        for (int p = 0; p < HW; p++) {
            L[p] = 0;
            for (int k = 0; k < F; k++) L[p] += f.A[p * F + k] * v[k];
            sum += L[p];
        }
        for (int p = 0; p < HW; p++) {
            double s = sum < 0 ? -L[p] : L[p];
            L[p] = s > 0 ? s : 0;
        }
        cs_explain_params p;
        cs_explain_params_default(&p);
        cs_explain_map out;
        CHECK(run(&t, x, "eigencam", &p, &out) == 0, "eigencam runs");
        check_map(out.map, L, HW, 1e-4, filters[q] > HW ? "eigencam, A A^T" : "eigencam, A^T A");
        cs_explain_map_free(&out);
        cs_model_free(t.m);
    }
}

/* Gradient, gradient x input, guided backpropagation and Guided Grad-CAM against the
 * backward pass written out above, for every kind of ReLU-like node. */
static void test_input_gradients_and_guided(void)
{
    const int acts[] = {ACT_LEAKY, ACT_RELU, ACT_ACTIVATION, ACT_FUSED};
    for (int a = 0; a < 4; a++) {
        tiny t = tiny_build(3, acts[a], 51 + a);
        float x[NIN];
        tiny_image(x, 52 + a);
        double xd[NIN], g[NIN], gg[NIN], ref[NIN];
        to_double(x, xd, NIN);
        for (int kind = 0; kind < 2; kind++) {
            const int c = 2;
            ref_grad_x(&t, xd, c, kind, 0, g);
            ref_grad_x(&t, xd, c, kind, 1, gg);
            cs_explain_params p;
            cs_explain_params_default(&p);
            p.class_index = c;
            p.score_kind = kind;
            cs_explain_map out;
            char what[64];
            snprintf(what, sizeof what, "act %d score %d", acts[a], kind);
            CHECK(run(&t, x, "gradient", &p, &out) == 0, "gradient runs");
            check_map(out.attr, g, NIN, 1e-5, "gradient");
            double mapref[TH * TW];
            for (int i = 0; i < TH * TW; i++) mapref[i] = fmax(fabs(g[2 * i]), fabs(g[2 * i + 1]));
            check_map(out.map, mapref, TH * TW, 1e-5, "gradient's map: max |.| over channels");
            cs_explain_map_free(&out);
            CHECK(run(&t, x, "gradient_x_input", &p, &out) == 0, "gradient_x_input runs");
            for (int i = 0; i < NIN; i++) ref[i] = g[i] * xd[i];
            check_map(out.attr, ref, NIN, 1e-5, "gradient x input");
            for (int i = 0; i < TH * TW; i++) mapref[i] = ref[2 * i] + ref[2 * i + 1];
            check_map(out.map, mapref, TH * TW, 1e-5, "gradient x input's map: sum over channels");
            cs_explain_map_free(&out);
            CHECK(run(&t, x, "guided_backprop", &p, &out) == 0, "guided_backprop runs");
            check_map(out.attr, gg, NIN, 1e-5, what);
            cs_explain_map_free(&out);
            /* Guided Grad-CAM: guided backpropagation times Grad-CAM resized and scaled to 1. */
            double L[HW], up[TH * TW], mx = 0;
            ref_grad_cam(&t, x, c, kind, GRADCAM, L);
            ref_resize(L, OH, OW, up, TH, TW);
            for (int i = 0; i < TH * TW; i++) mx = fmax(mx, up[i]);
            CHECK(run(&t, x, "guided_gradcam", &p, &out) == 0, "guided_gradcam runs");
            for (int i = 0; i < NIN; i++) ref[i] = mx > 0 ? gg[i] * up[i / TC] / mx : 0;
            if (mx > 0) check_map(out.attr, ref, NIN, 1e-5, "guided gradcam");
            cs_explain_map_free(&out);
        }
        cs_model_free(t.m);
    }
}

/* The exec's guided flag is off again after a guided pass: a plain gradient follows. */
static void test_guided_flag_does_not_leak(void)
{
    tiny t = tiny_build(3, ACT_RELU, 61);
    float x[NIN];
    tiny_image(x, 62);
    char err[200];
    cs_explainer ex;
    CHECK(cs_explainer_init(&ex, t.m, x, NULL, err, sizeof err) == 0, "init");
    cs_explain_params p;
    cs_explain_params_default(&p);
    cs_explain_map a, b, c;
    CHECK(cs_explain_run(&ex, &cs_explain_gradient, &p, &a, err, sizeof err) == 0 &&
              cs_explain_run(&ex, &cs_explain_guided_backprop, &p, &b, err, sizeof err) == 0 &&
              cs_explain_run(&ex, &cs_explain_gradient, &p, &c, err, sizeof err) == 0,
          "runs: %s", err);
    int same = 1, differs = 0;
    for (int i = 0; i < NIN; i++) {
        same &= a.attr[i] == c.attr[i];
        differs |= a.attr[i] != b.attr[i];
    }
    CHECK(same, "the gradient after a guided pass is the plain gradient");
    CHECK(differs, "guided backpropagation differs from the gradient on this network");
    cs_explain_map_free(&a);
    cs_explain_map_free(&b);
    cs_explain_map_free(&c);
    cs_explainer_free(&ex);
    cs_model_free(t.m);
}

/* SmoothGrad: the same noise drawn here from the documented sequence. */
static void test_smoothgrad_is_the_mean_over_seeded_noise(void)
{
    tiny t = tiny_build(3, ACT_LEAKY, 71);
    float x[NIN];
    tiny_image(x, 72);
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.samples = 7;
    p.noise = 0.2f;
    p.seed = 99;
    p.batch = 3;
    p.class_index = 0;
    float lo = x[0], hi = x[0];
    for (int i = 1; i < NIN; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    double sigma = 0.2f * (double)(hi - lo), sum[NIN] = {0}, xn[NIN], g[NIN];
    cs_rng r;
    cs_rng_seed(&r, 99);
    for (int s = 0; s < 7; s++) {
        for (int i = 0; i < NIN; i++) xn[i] = (float)(x[i] + sigma * cs_rng_normal(&r));
        ref_grad_x(&t, xn, 0, CS_SCORE_LOGIT, 0, g);
        for (int i = 0; i < NIN; i++) sum[i] += g[i] / 7;
    }
    cs_explain_map out;
    CHECK(run(&t, x, "smoothgrad", &p, &out) == 0, "smoothgrad runs");
    check_map(out.attr, sum, NIN, 1e-5, "smoothgrad");
    CHECK(out.forwards == 7 && out.backwards == 7, "7 noisy passes (%ld, %ld)", out.forwards, out.backwards);
    cs_explain_map_free(&out);
    /* No noise: the plain gradient. */
    p.noise = 0;
    double xd[NIN];
    to_double(x, xd, NIN);
    ref_grad_x(&t, xd, 0, CS_SCORE_LOGIT, 0, g);
    CHECK(run(&t, x, "smoothgrad", &p, &out) == 0, "smoothgrad runs");
    check_map(out.attr, g, NIN, 1e-5, "smoothgrad without noise");
    cs_explain_map_free(&out);
    cs_model_free(t.m);
}

/* Integrated Gradients: the midpoint rule along the path, with each baseline. */
static void test_integrated_gradients_matches_its_sum(void)
{
    tiny t = tiny_build(3, ACT_LEAKY, 81);
    float x[NIN];
    tiny_image(x, 82);
    double xd[NIN];
    to_double(x, xd, NIN);
    for (int base = 0; base < CS_BASELINE_COUNT; base++) {
        cs_explain_params p;
        cs_explain_params_default(&p);
        p.steps = 10;
        p.baseline = base;
        p.batch = 4;
        p.class_index = 1;
        p.blur_sigma = 1.0f;
        /* The baseline as the core makes it (its blur and noise are tested on their own). */
        char err[200];
        cs_explainer ex;
        CHECK(cs_explainer_init(&ex, t.m, x, NULL, err, sizeof err) == 0, "init");
        ex.black = BLACK;
        ex.white = WHITE;
        float b[NIN];
        CHECK(cs_explain_baseline_image(&ex, &p, base, b) == 0, "baseline");
        cs_explainer_free(&ex);
        double sum[NIN] = {0}, pt[NIN], g[NIN], ref[NIN];
        for (int j = 0; j < 10; j++) {
            double a = (j + 0.5) / 10;
            for (int i = 0; i < NIN; i++) pt[i] = b[i] + (float)a * (x[i] - b[i]);
            ref_grad_x(&t, pt, 1, CS_SCORE_LOGIT, 0, g);
            for (int i = 0; i < NIN; i++) sum[i] += g[i];
        }
        for (int i = 0; i < NIN; i++) ref[i] = (xd[i] - b[i]) * sum[i] / 10;
        cs_explain_map out;
        CHECK(run(&t, x, "integrated_gradients", &p, &out) == 0, "integrated gradients runs");
        check_map(out.attr, ref, NIN, 1e-5, base == 0 ? "IG black" : base == 1 ? "IG blur" : "IG noise");
        double bd[NIN];
        to_double(b, bd, NIN);
        CHECK_NEAR(out.baseline_score, ref_score(&t, bd, 1, CS_SCORE_LOGIT), 1e-5, "score at the baseline");
        cs_explain_map_free(&out);
        if (base == CS_BASELINE_BLACK)
            for (int i = 0; i < NIN; i++) CHECK(b[i] == BLACK[i % TC], "black baseline: the black values");
        if (base == CS_BASELINE_NOISE)
            for (int i = 0; i < NIN; i++)
                CHECK(b[i] >= BLACK[i % TC] && b[i] <= WHITE[i % TC], "noise baseline between black and white");
    }
    cs_model_free(t.m);
}

/* Occlusion: each position's drop, averaged over the positions covering a pixel. */
static void test_occlusion_matches_its_definition(void)
{
    tiny t = tiny_build(3, ACT_LEAKY, 91);
    float x[NIN];
    tiny_image(x, 92);
    double xd[NIN];
    to_double(x, xd, NIN);
    const int P = 2, S = 2, c = 0; /* positions 0 and 2 on each axis: the last row and column stay uncovered */
    double s0 = ref_score(&t, xd, c, CS_SCORE_PROBABILITY), sum[TH * TW] = {0}, ref[TH * TW];
    int cover[TH * TW] = {0};
    for (int y0 = 0; y0 + P <= TH; y0 += S)
        for (int x0 = 0; x0 + P <= TW; x0 += S) {
            double img[NIN];
            memcpy(img, xd, sizeof img);
            for (int y = y0; y < y0 + P; y++)
                for (int xx = x0; xx < x0 + P; xx++)
                    for (int ch = 0; ch < TC; ch++) img[(y * TW + xx) * TC + ch] = BLACK[ch];
            double d = s0 - ref_score(&t, img, c, CS_SCORE_PROBABILITY);
            for (int y = y0; y < y0 + P; y++)
                for (int xx = x0; xx < x0 + P; xx++) sum[y * TW + xx] += d, cover[y * TW + xx]++;
        }
    for (int i = 0; i < TH * TW; i++) ref[i] = cover[i] ? sum[i] / cover[i] : 0;
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.patch = P;
    p.stride = S;
    p.class_index = c;
    p.score_kind = CS_SCORE_PROBABILITY;
    p.batch = 3;
    cs_explain_map out;
    CHECK(run(&t, x, "occlusion", &p, &out) == 0, "occlusion runs");
    check_map(out.map, ref, TH * TW, 1e-5, "occlusion");
    CHECK(out.forwards == 4, "four positions (%ld forwards)", out.forwards);
    CHECK(out.map[TW - 1] == 0 && out.map[TH * TW - 1] == 0, "uncovered pixels are 0");
    cs_explain_map_free(&out);
    cs_model_free(t.m);
}

/* ---- the notebook's network ------------------------------------------------------- */

static cs_model *g_fmnist;
static float g_img[784];

static int fmnist_ready(void)
{
    if (g_fmnist) return 1;
    char err[300];
    cs_dataset d;
    if (!(g_fmnist = cs_model_load("models/fmnist.csm", err, sizeof err))) {
        CHECK(0, "models/fmnist.csm: %s", err);
        return 0;
    }
    if (cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &d, err, sizeof err) != 0) {
        CHECK(0, "the Fashion-MNIST test set: %s", err);
        return 0;
    }
    cs_dataset_image_float(&d, 18, g_img);
    cs_dataset_free(&d);
    return 1;
}

/* Completeness: the attributions add up to S(x) - S(baseline), within 1 % at 128 steps. */
static void test_ig_completeness_on_the_notebook_network(void)
{
    if (!fmnist_ready()) return;
    char err[300];
    cs_explainer ex;
    CHECK(cs_explainer_init(&ex, g_fmnist, g_img, NULL, err, sizeof err) == 0, "init");
    for (int base = 0; base < CS_BASELINE_COUNT; base++)
        for (int kind = 0; kind < 2; kind++) {
            cs_explain_params p;
            cs_explain_params_default(&p);
            p.steps = 128;
            p.baseline = base;
            p.score_kind = kind;
            /* The blurred bag is still a bag: its probability barely moves on that path. */
            if (kind == CS_SCORE_PROBABILITY && base == CS_BASELINE_BLUR) continue;
            cs_explain_map m;
            CHECK(cs_explain_run(&ex, &cs_explain_integrated_gradients, &p, &m, err, sizeof err) == 0, "%s", err);
            double sum = 0;
            for (int i = 0; i < 784; i++) sum += m.attr[i];
            double want = (double)m.score - m.baseline_score;
            CHECK(fabs(sum - want) <= 0.01 * fabs(want) && fabs(want) > 1e-3,
                  "baseline %d score %d: sum %.6g, S(x) - S(b) = %.6g", base, kind, sum, want);
            cs_explain_map_free(&m);
        }
    cs_explainer_free(&ex);
}

/* Adebayo et al.'s finding: guided backpropagation survives the randomisation of the
 * whole network (its map is mostly the image's edges), Grad-CAM does not. */
static void test_randomisation_finding_on_the_notebook_network(void)
{
    if (!fmnist_ready()) return;
    char err[300];
    cs_explain_params p;
    cs_explain_params_default(&p);
    cs_sanity_result gb, gc;
    float before = g_fmnist->param_block[100];
    CHECK(cs_explain_sanity(g_fmnist, g_img, NULL, NULL, &cs_explain_guided_backprop, &p, &gb, err, sizeof err) == 0,
          "%s", err);
    CHECK(cs_explain_sanity(g_fmnist, g_img, NULL, NULL, &cs_explain_gradcam, &p, &gc, err, sizeof err) == 0, "%s",
          err);
    CHECK(g_fmnist->param_block[100] == before, "the served model is untouched");
    CHECK(gb.n == 8 && gc.n == 8, "the trained model and 7 nodes with parameters (%d)", gb.n);
    CHECK(!strcmp(gb.layer[1], "dense_2") && !strcmp(gb.layer[7], "conv2d_1"), "from the top down: %s .. %s",
          gb.layer[1], gb.layer[7]);
    double gb_min = 1, gc_last = gc.rank_correlation[gc.n - 1];
    for (int i = 0; i < gb.n; i++) gb_min = fmin(gb_min, gb.rank_correlation[i]);
    fprintf(stderr, "    rank correlation after the whole cascade: guided backprop %.3f, Grad-CAM %.3f\n",
            gb.rank_correlation[gb.n - 1], gc_last);
    CHECK(gb_min > 0.5, "guided backpropagation barely changes (lowest rho %.3f)", gb_min);
    CHECK(gc_last < 0.3, "Grad-CAM of a random network is another map (rho %.3f)", gc_last);
    cs_sanity_free(&gb);
    cs_sanity_free(&gc);
}

/* Every method runs on the notebook's network and gives a map of the right size. */
static void test_every_method_on_the_notebook_network(void)
{
    if (!fmnist_ready()) return;
    char err[300];
    cs_explainer ex;
    CHECK(cs_explainer_init(&ex, g_fmnist, g_img, NULL, err, sizeof err) == 0, "init");
    CHECK(ex.predicted == 8, "test image 18 is a Bag (%d)", ex.predicted);
    for (int i = 0; i < cs_explain_count(); i++) {
        const cs_explain_method *meth = cs_explain_method_at(i);
        cs_explain_params p;
        cs_explain_params_default(&p);
        cs_explain_map m;
        if (cs_explain_run(&ex, meth, &p, &m, err, sizeof err) != 0) {
            CHECK(0, "%s: %s", meth->name, err);
            continue;
        }
        int cam = meth->family == CS_EXPLAIN_CAM;
        CHECK(cam ? m.h == 11 && m.w == 11 : m.h == 28 && m.w == 28, "%s: %dx%d", meth->name, m.h, m.w);
        CHECK(!m.all_zero, "%s shows something", meth->name);
        CHECK(cam == (m.attr == NULL), "%s: attributions for input methods only", meth->name);
        cs_explain_map_free(&m);
    }
    CHECK(cs_explain_find("nope") == NULL && cs_explain_method_at(cs_explain_count()) == NULL, "lookups end");
    cs_explainer_free(&ex);
}

/* ---- faithfulness ------------------------------------------------------------------ */

static double ref_auc(const double *c, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += c[i];
    return (s - c[0] / 2 - c[n - 1] / 2) / (n - 1);
}

typedef struct {
    float v;
    int i;
} vi;
static int by_v(const void *a, const void *b)
{
    const vi *x = a, *y = b;
    return x->v > y->v ? -1 : x->v < y->v ? 1 : x->i - y->i;
}

static void test_deletion_insertion_and_confidence(void)
{
    tiny t = tiny_build(3, ACT_LEAKY, 101);
    float x[NIN];
    tiny_image(x, 102);
    double xd[NIN];
    to_double(x, xd, NIN);
    char err[200];
    cs_explainer ex;
    CHECK(cs_explainer_init(&ex, t.m, x, NULL, err, sizeof err) == 0, "init");
    ex.black = BLACK;
    ex.white = WHITE;
    cs_explain_params p;
    cs_explain_params_default(&p);
    cs_explain_map m;
    CHECK(cs_explain_run(&ex, &cs_explain_gradient_x_input, &p, &m, err, sizeof err) == 0, "%s", err);
    cs_faith_params fp;
    cs_faith_params_default(&fp);
    fp.curve_steps = 4; /* 25 pixels: 7 per step, the last step takes what is left */
    fp.batch = 2;
    fp.blur_sigma = 1.0f;
    cs_faith_result r;
    CHECK(cs_faith_evaluate(&ex, &m, &fp, CS_FAITH_CURVES | CS_FAITH_CONFIDENCE, &r, err, sizeof err) == 0, "%s", err);
    /* The ranking: heat, most relevant first, ties in raster order. */
    vi order[TH * TW];
    for (int i = 0; i < TH * TW; i++) order[i] = (vi){m.heat[i], i};
    qsort(order, TH * TW, sizeof *order, by_v);
    float blur[NIN];
    CHECK(cs_explain_blur(x, TH, TW, TC, 1.0f, blur) == 0, "blur");
    double del[5], ins[5];
    for (int s = 0; s <= 4; s++) {
        double d[NIN], in[NIN];
        memcpy(d, xd, sizeof d);
        to_double(blur, in, NIN);
        int k = s * 7 < 25 ? s * 7 : 25;
        for (int r2 = 0; r2 < k; r2++)
            for (int ch = 0; ch < TC; ch++) {
                int at = order[r2].i * TC + ch;
                d[at] = BLACK[ch];
                in[at] = xd[at];
            }
        del[s] = ref_score(&t, d, m.class_index, CS_SCORE_PROBABILITY);
        ins[s] = ref_score(&t, in, m.class_index, CS_SCORE_PROBABILITY);
        CHECK_NEAR(r.deletion[s], del[s], 1e-6, "deletion point");
        CHECK_NEAR(r.insertion[s], ins[s], 1e-6, "insertion point");
    }
    CHECK(r.n == 5, "5 points");
    CHECK_NEAR(r.deletion_auc, ref_auc(del, 5), 1e-6, "deletion area");
    CHECK_NEAR(r.insertion_auc, ref_auc(ins, 5), 1e-6, "insertion area");
    CHECK_NEAR(r.deletion[0], ex.out[m.class_index], 1e-6, "deletion starts at the image");
    CHECK_NEAR(r.insertion[4], ex.out[m.class_index], 1e-6, "insertion ends at the image");
    /* Confidence: the image through its heat (heat at the input's size here). */
    double masked[NIN];
    for (int i = 0; i < NIN; i++) masked[i] = BLACK[i % TC] + m.heat[i / TC] * (xd[i] - BLACK[i % TC]);
    double o = ref_score(&t, masked, m.class_index, CS_SCORE_PROBABILITY), y = ex.out[m.class_index];
    CHECK_NEAR(r.masked_probability, o, 1e-6, "masked probability");
    CHECK_NEAR(r.drop, y > o ? (y - o) / y : 0, 1e-6, "drop");
    CHECK(r.increase == (o > y), "increase");
    cs_faith_free(&r);
    cs_explain_map_free(&m);
    cs_explainer_free(&ex);
    cs_model_free(t.m);
}

/* ROAD's imputation: without noise, each removed pixel is the weighted mean of its
 * neighbours (1/6 beside, 1/12 diagonal, over those inside the image). */
static void test_road_imputation_solves_its_equations(void)
{
    tiny t = tiny_build(3, ACT_LEAKY, 111);
    float x[NIN];
    tiny_image(x, 112);
    char err[200];
    cs_explainer ex;
    CHECK(cs_explainer_init(&ex, t.m, x, NULL, err, sizeof err) == 0, "init");
    /* A lone pixel in the middle: the mean of its 8 kept neighbours, by hand. */
    uint8_t removed[TH * TW] = {0};
    removed[12] = 1;
    float img[NIN];
    memcpy(img, x, sizeof img);
    CHECK(cs_road_impute(&ex, img, removed, 0, 1) == 0, "impute");
    for (int ch = 0; ch < TC; ch++) {
        double want = (x[(6) * TC + ch] + x[8 * TC + ch] + x[16 * TC + ch] + x[18 * TC + ch]) / 12.0 +
                      (x[7 * TC + ch] + x[11 * TC + ch] + x[13 * TC + ch] + x[17 * TC + ch]) / 6.0;
        CHECK_NEAR(img[12 * TC + ch], want, 1e-6, "lone pixel");
    }
    /* A large removed area with corners and edges: every equation holds. */
    uint8_t many[TH * TW] = {0};
    const int gone[] = {0, 1, 2, 5, 6, 7, 12, 13, 14, 19, 23, 24};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) many[gone[i]] = 1;
    memcpy(img, x, sizeof img);
    CHECK(cs_road_impute(&ex, img, many, 0, 1) == 0, "impute");
    double worst = 0;
    for (int i = 0; i < TH * TW; i++) {
        for (int ch = 0; ch < TC; ch++) {
            if (!many[i]) {
                CHECK(img[i * TC + ch] == x[i * TC + ch], "kept pixels stay");
                continue;
            }
            double s = 0, wsum = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int y = i / TW + dy, xx = i % TW + dx;
                    if ((!dy && !dx) || y < 0 || y >= TH || xx < 0 || xx >= TW) continue;
                    double w = dy && dx ? 1 / 12.0 : 1 / 6.0;
                    s += w * img[(y * TW + xx) * TC + ch];
                    wsum += w;
                }
            worst = fmax(worst, fabs(img[i * TC + ch] - s / wsum));
        }
    }
    CHECK(worst < 1e-5, "every removed pixel is its neighbours' weighted mean (worst %g)", worst);
    /* With noise: the same solution plus noise of the channel's range. */
    float noisy[NIN];
    memcpy(noisy, x, sizeof noisy);
    CHECK(cs_road_impute(&ex, noisy, many, 0.01f, 7) == 0, "impute with noise");
    double dev = 0;
    for (int i = 0; i < NIN; i++) dev = fmax(dev, fabs(noisy[i] - img[i]));
    CHECK(dev > 0 && dev < 0.06, "noise of about 0.01 of the range (largest %g)", dev);
    cs_explainer_free(&ex);
    cs_model_free(t.m);
}

/* The ROAD score from its curves: mean of (LeRF - MoRF) / 2 over 10 % .. 90 %. */
static void test_road_score(void)
{
    tiny t = tiny_build(3, ACT_LEAKY, 121);
    float x[NIN];
    tiny_image(x, 122);
    char err[200];
    cs_explainer ex;
    CHECK(cs_explainer_init(&ex, t.m, x, NULL, err, sizeof err) == 0, "init");
    cs_explain_params p;
    cs_explain_params_default(&p);
    cs_explain_map m;
    CHECK(cs_explain_run(&ex, &cs_explain_gradient, &p, &m, err, sizeof err) == 0, "%s", err);
    cs_faith_params fp;
    cs_faith_params_default(&fp);
    cs_faith_result r;
    CHECK(cs_faith_evaluate(&ex, &m, &fp, CS_FAITH_ROAD, &r, err, sizeof err) == 0, "%s", err);
    vi order[TH * TW];
    for (int i = 0; i < TH * TW; i++) order[i] = (vi){m.heat[i], i};
    qsort(order, TH * TW, sizeof *order, by_v);
    double s = 0;
    for (int f = 0; f < CS_ROAD_POINTS; f++) {
        int k = (int)((f + 1) / 10.0 * 25 + 0.5);
        double pr[2];
        for (int o = 0; o < 2; o++) {
            uint8_t rem[TH * TW] = {0};
            for (int q = 0; q < k; q++) rem[o == 0 ? order[q].i : order[24 - q].i] = 1;
            float img[NIN];
            memcpy(img, x, sizeof img);
            cs_road_impute(&ex, img, rem, fp.road_noise, fp.seed + (uint64_t)(2 * f + o));
            double d[NIN];
            to_double(img, d, NIN);
            pr[o] = ref_score(&t, d, m.class_index, CS_SCORE_PROBABILITY);
        }
        CHECK_NEAR(r.road_morf[f], pr[0], 1e-6, "MoRF point");
        CHECK_NEAR(r.road_lerf[f], pr[1], 1e-6, "LeRF point");
        s += (pr[1] - pr[0]) / 2;
    }
    CHECK_NEAR(r.road, s / CS_ROAD_POINTS, 1e-6, "ROAD score");
    cs_faith_free(&r);
    cs_explain_map_free(&m);
    cs_explainer_free(&ex);
    cs_model_free(t.m);
}

static void test_spearman_and_blur(void)
{
    float a[] = {1, 2, 2, 3}, b[] = {1, 3, 2, 4}, c[] = {5, 5, 5, 5};
    CHECK_NEAR(cs_spearman(a, b, 4), 4.5 / sqrt(22.5), 1e-12, "ties at their mean rank");
    CHECK_NEAR(cs_spearman(a, a, 4), 1, 1e-12, "a map with itself");
    CHECK(cs_spearman(a, c, 4) == 0, "a constant map correlates with nothing");
    float rev[] = {3, 2, 2, 1};
    CHECK_NEAR(cs_spearman(a, rev, 4), -1, 1e-12, "reversed");
    /* Blur: a constant image stays; a point spreads into the normalised Gaussian. */
    float img[7 * 7], out[7 * 7];
    for (int i = 0; i < 49; i++) img[i] = 2.5f;
    CHECK(cs_explain_blur(img, 7, 7, 1, 1.3f, out) == 0, "blur");
    for (int i = 0; i < 49; i++) CHECK_NEAR(out[i], 2.5, 1e-5, "constant stays");
    memset(img, 0, sizeof img);
    img[24] = 1;
    CHECK(cs_explain_blur(img, 7, 7, 1, 1.0f, out) == 0, "blur");
    double k0 = 1, k1 = exp(-0.5), k2 = exp(-2), k3 = exp(-4.5), z = k0 + 2 * (k1 + k2 + k3);
    CHECK_NEAR(out[24], 1 / (z * z), 1e-6, "the centre");
    CHECK_NEAR(out[25], k1 / (z * z), 1e-6, "one to the right");
    CHECK_NEAR(out[24 + 14], k2 / (z * z), 1e-6, "two below");
}

static void test_sanity_on_a_clone(void)
{
    tiny t = tiny_build(3, ACT_LEAKY, 131);
    float x[NIN];
    tiny_image(x, 132);
    float *copy = malloc(t.m->n_param_floats * sizeof(float));
    memcpy(copy, t.m->param_block, t.m->n_param_floats * sizeof(float));
    char err[200];
    cs_explain_params p;
    cs_explain_params_default(&p);
    cs_sanity_result r;
    CHECK(cs_explain_sanity(t.m, x, BLACK, WHITE, &cs_explain_gradient, &p, &r, err, sizeof err) == 0, "%s", err);
    CHECK(!memcmp(copy, t.m->param_block, t.m->n_param_floats * sizeof(float)), "the model is untouched");
    CHECK(r.n == 3 && !strcmp(r.layer[1], "dense") && !strcmp(r.layer[2], "conv"), "dense, then conv");
    CHECK(r.rank_correlation[0] == 1, "step 0 is the trained model");
    CHECK(r.h == TH && r.w == TW, "input maps");
    /* Step 1 by hand: the dense layer re-drawn by its own initialiser from the seed. */
    cs_model *c = cs_model_clone(t.m);
    cs_rng rng;
    cs_rng_seed(&rng, p.seed);
    cs_layer_ops_of(CS_DENSE)->init(&c->layers[t.dense], &rng);
    cs_explainer ex;
    cs_explain_map m;
    CHECK(cs_explainer_init(&ex, c, x, NULL, err, sizeof err) == 0, "init");
    p.class_index = r.class_index;
    CHECK(cs_explain_run(&ex, &cs_explain_gradient, &p, &m, err, sizeof err) == 0, "%s", err);
    int same = 1;
    for (int i = 0; i < TH * TW; i++) same &= m.heat[i] == r.heat[1][i];
    CHECK(same, "step 1 is the map of the model with its dense layer re-initialised");
    CHECK_NEAR(r.rank_correlation[1], cs_spearman(r.heat[0], m.heat, TH * TW), 1e-12, "its rho");
    cs_explain_map_free(&m);
    cs_explainer_free(&ex);
    cs_model_free(c);
    cs_sanity_free(&r);
    free(copy);
    cs_model_free(t.m);
}

/* ---- refused parameters ------------------------------------------------------------ */

static void test_bad_parameters_are_named(void)
{
    tiny t = tiny_build(3, ACT_LEAKY, 141);
    char err[200];
    struct {
        const char *method, *field;
    } cases[] = {
        {"integrated_gradients", "steps"}, {"smoothgrad", "noise"}, {"smoothgrad", "samples"},
        {"occlusion", "patch"},            {"occlusion", "stride"}, {"gradcam", "layer"},
        {"gradient", "class"},             {"integrated_gradients", "baseline"}, {"scorecam", "batch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_explain_params p;
        cs_explain_params_default(&p);
        const char *f = cases[i].field;
        if (!strcmp(f, "steps")) p.steps = 0;
        if (!strcmp(f, "noise")) p.noise = NAN;
        if (!strcmp(f, "samples")) p.samples = 1001;
        if (!strcmp(f, "patch")) p.patch = 6;
        if (!strcmp(f, "stride")) p.stride = 6;
        if (!strcmp(f, "layer")) p.layer = 2; /* flatten: no height and width */
        if (!strcmp(f, "class")) p.class_index = 3;
        if (!strcmp(f, "baseline")) p.baseline = 3;
        if (!strcmp(f, "batch")) p.batch = 1000;
        const char *got = cs_explain_params_check(t.m, cs_explain_find(cases[i].method), &p, err, sizeof err);
        CHECK(got && !strcmp(got, f), "%s: %s named (got %s: %s)", cases[i].method, f, got ? got : "none", err);
    }
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.steps = 0; /* a method that does not read steps does not care */
    CHECK(!cs_explain_params_check(t.m, &cs_explain_gradcam, &p, err, sizeof err), "gradcam ignores steps");
    float x[NIN];
    tiny_image(x, 142);
    cs_explain_map m;
    p.steps = 5000;
    CHECK(run(&t, x, "integrated_gradients", &p, &m) == -1 && !m.map, "a run with bad parameters fails cleanly");
    cs_model_free(t.m);
}

int main(void)
{
    RUN(test_gradient_cams_match_their_formulas);
    RUN(test_scorecam_matches_its_formula_in_any_batch);
    RUN(test_ablationcam_matches_its_formula);
    RUN(test_ablationcam_around_a_skip_connection);
    RUN(test_eigencam_is_the_first_principal_direction);
    RUN(test_input_gradients_and_guided);
    RUN(test_guided_flag_does_not_leak);
    RUN(test_smoothgrad_is_the_mean_over_seeded_noise);
    RUN(test_integrated_gradients_matches_its_sum);
    RUN(test_occlusion_matches_its_definition);
    RUN(test_deletion_insertion_and_confidence);
    RUN(test_road_imputation_solves_its_equations);
    RUN(test_road_score);
    RUN(test_spearman_and_blur);
    RUN(test_sanity_on_a_clone);
    RUN(test_bad_parameters_are_named);
    RUN(test_every_method_on_the_notebook_network);
    RUN(test_ig_completeness_on_the_notebook_network);
    RUN(test_randomisation_finding_on_the_notebook_network);
    cs_model_free(g_fmnist);
    return test_summary("explain");
}
