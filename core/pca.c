/*
 * pca.c - principal components through LAPACK's symmetric eigensolver (dsyevd, which
 * Debian's OpenBLAS carries; called by its Fortran name, as OpenBLAS ships no LAPACKE).
 * The covariance is summed in double: with 10,000 points of activations that are
 * mostly positive, float sums would lose the small components.
 */
#include "embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK: eigenvalues (ascending) and, with jobz 'V', eigenvectors of a symmetric
 * matrix, overwriting it column by column (column-major, which for a symmetric
 * matrix read row-major gives the eigenvectors as rows). */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
                    size_t uplo_len);

int cs_pca(const float *x, int n, int d, int dims, float *y, double *var, char *err, size_t errlen)
{
    if (n < 2 || d < 1 || dims < 1 || dims > d || d > CS_PCA_MAX_DIM) {
        snprintf(err, errlen, "PCA of %d points of %d values into %d: needs 2 points or more and 1 to %d values", n,
                 d, dims, CS_PCA_MAX_DIM);
        return -1;
    }
    double *mean = calloc((size_t)d, sizeof *mean), *cov = calloc((size_t)d * d, sizeof *cov);
    double *w = malloc((size_t)d * sizeof *w), *row = malloc((size_t)d * sizeof *row);
    double wq;
    int iq, info = 0, lwork = -1, liwork = -1;
    double *work = NULL;
    int *iwork = NULL, rc = -1;
    if (!mean || !cov || !w || !row) goto nomem;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mean[j] += x[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mean[j] /= n;
    /* Upper triangle of sum (x - mean)(x - mean)^T, row by row. */
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) row[j] = x[(size_t)i * d + j] - mean[j];
        for (int a = 0; a < d; a++) {
            const double ra = row[a];
            if (ra == 0) continue;
            double *c = cov + (size_t)a * d;
            for (int b = a; b < d; b++) c[b] += ra * row[b];
        }
    }
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) {
            cov[(size_t)a * d + b] /= n - 1;
            cov[(size_t)b * d + a] = cov[(size_t)a * d + b];
        }
    dsyevd_("V", "U", &d, cov, &d, w, &wq, &lwork, &iq, &liwork, &info, 1, 1);
    lwork = (int)wq;
    liwork = iq;
    work = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof *work);
    iwork = malloc((size_t)(liwork > 1 ? liwork : 1) * sizeof *iwork);
    if (info != 0 || !work || !iwork) goto nomem;
    dsyevd_("V", "U", &d, cov, &d, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    if (info != 0) {
        snprintf(err, errlen, "PCA: the eigensolver did not converge (dsyevd info %d)", info);
        goto done;
    }
    /* Largest first: eigenvector of w[d - 1 - k] is row d - 1 - k of cov as stored. */
    for (int k = 0; k < dims; k++) {
        double *v = cov + (size_t)(d - 1 - k) * d;
        int big = 0;
        for (int j = 1; j < d; j++)
            if (fabs(v[j]) > fabs(v[big])) big = j;
        if (v[big] < 0)
            for (int j = 0; j < d; j++) v[j] = -v[j];
        if (var) var[k] = w[d - 1 - k] > 0 ? w[d - 1 - k] : 0;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < dims; k++) {
            const double *v = cov + (size_t)(d - 1 - k) * d;
            double s = 0;
            for (int j = 0; j < d; j++) s += (x[(size_t)i * d + j] - mean[j]) * v[j];
            y[(size_t)i * dims + k] = (float)s;
        }
    rc = 0;
    goto done;
nomem:
    snprintf(err, errlen, info ? "PCA: the eigensolver refused the work query (info %d)" : "out of memory", info);
done:
    free(mean);
    free(cov);
    free(w);
    free(row);
    free(work);
    free(iwork);
    return rc;
}
