/*
 * cam_eigencam.c - Eigen-CAM (Muhammad and Yeasin, IJCNN 2020): the activations
 * projected on their first principal direction, class-free,
 *   A (hw x k) = U S V^T,  L = ReLU(A v_1)  (sign chosen so that sum(A v_1) >= 0),
 * without centring, as the paper writes it. v_1 comes from LAPACK's symmetric
 * eigensolver (ssyevd, which OpenBLAS carries) on the smaller Gram matrix: A^T A
 * (k x k) gives v_1 itself, A A^T (hw x hw) gives u_1 with A v_1 = s_1 u_1.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

/* LAPACK's Fortran interface as OpenBLAS exports it (Debian ships no C header for it
 * without LAPACKE); the trailing lengths are the hidden lengths of the two strings. */
void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda, float *w, float *work,
             const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len, size_t uplo_len);

/* The eigenvector of the largest eigenvalue of the symmetric n x n matrix g (its
 * upper triangle in row-major order, which is the lower one in LAPACK's column-major
 * order), into v; its eigenvalue in *lambda. 0, or -1 (no memory or no convergence). */
static int top_eigenvector(float *g, int n, float *v, float *lambda)
{
    int lwork = -1, liwork = -1, iw, info = 0;
    float wq;
    float *eig = malloc((size_t)n * sizeof(float));
    if (!eig) return -1;
    ssyevd_("V", "L", &n, g, &n, eig, &wq, &lwork, &iw, &liwork, &info, 1, 1);
    lwork = (int)wq;
    liwork = iw;
    float *work = malloc((size_t)lwork * sizeof(float));
    int *iwork = malloc((size_t)liwork * sizeof(int));
    int rc = -1;
    if (work && iwork && info == 0) {
        ssyevd_("V", "L", &n, g, &n, eig, work, &lwork, iwork, &liwork, &info, 1, 1);
        if (info == 0) {
            /* Ascending eigenvalues; eigenvector j is column j (contiguous in column-major). */
            for (int i = 0; i < n; i++) v[i] = g[(size_t)(n - 1) * n + i];
            *lambda = eig[n - 1];
            rc = 0;
        }
    }
    free(eig);
    free(work);
    free(iwork);
    return rc;
}

static int eigencam_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const float *a;
    if (cs_cam_activations(x, p, out, &a, err, errlen) != 0) return -1;
    const int hw = out->h * out->w, k = x->model->layers[out->layer].out.c, n = hw < k ? hw : k;
    float *g = malloc((size_t)n * n * sizeof(float)), *v = malloc((size_t)n * sizeof(float));
    float *proj = malloc((size_t)hw * sizeof(float));
    int rc = -1;
    float lambda = 0;
    if (!g || !v || !proj) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (hw <= k) cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, hw, k, 1.0f, a, k, 0.0f, g, n);
    else cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, hw, 1.0f, a, k, 0.0f, g, n);
    if (top_eigenvector(g, n, v, &lambda) != 0) {
        snprintf(err, errlen, "the eigensolver failed on the %dx%d Gram matrix of the activations", n, n);
        goto out;
    }
    if (hw <= k) {
        float s = lambda > 0 ? sqrtf(lambda) : 0.0f;
        for (int i = 0; i < hw; i++) proj[i] = s * v[i];
    } else {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, hw, k, 1.0f, a, k, v, 1, 0.0f, proj, 1);
    }
    double sum = 0;
    for (int i = 0; i < hw; i++) sum += proj[i];
    for (int i = 0; i < hw; i++) {
        float q = sum < 0 ? -proj[i] : proj[i];
        proj[i] = q > 0 ? q : 0.0f;
    }
    out->map = proj;
    proj = NULL;
    rc = 0;
out:
    free(g);
    free(v);
    free(proj);
    return rc;
}

const cs_explain_method cs_explain_eigencam = {
    .name = "eigencam",
    .title = "Eigen-CAM",
    .paper = "Muhammad and Yeasin, Eigen-CAM: Class Activation Map using Principal Components, IJCNN 2020",
    .family = CS_EXPLAIN_CAM,
    .params = CS_EP_LAYER,
    .run = eigencam_run,
};
