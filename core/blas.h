/*
 * blas.h - making OpenBLAS fast wherever convscope starts.
 *
 * Debian's OpenBLAS 0.3.21 falls back to slow generic kernels on CPUs it does not
 * recognise. It picks its kernels when the library loads, before main(), so the
 * only fix from inside is to re-execute once with OPENBLAS_CORETYPE set.
 */
#ifndef CS_BLAS_H
#define CS_BLAS_H

/* Call first thing in main(). May re-execute the program (argv must be main's).
 * Respects an OPENBLAS_CORETYPE already set. Verifies one small product against a
 * plain loop; returns 0, or -1 when OpenBLAS computes wrong results. */
int cs_blas_init(int argc, char **argv);
const char *cs_blas_core(void);
/* Threads OpenBLAS uses for the calling process (global in OpenBLAS). */
void cs_blas_set_threads(int n);
int cs_blas_threads(void);

/* Runs this same program again with argv (the binary itself, not the name argv[0]
 * gives); returns only when that fails. */
void cs_exec_self(char **argv);

/* 1 when `core` (an OpenBLAS core name) is a pre-AVX2 kernel set or a fallback. */
int cs_blas_core_is_generic(const char *core);
/* The OPENBLAS_CORETYPE to force for a CPU with these features when OpenBLAS chose
 * `core`, or NULL to keep it. The decision cs_blas_init takes, exposed for tests. */
const char *cs_blas_pick_coretype(const char *core, int has_avx512f, int has_avx2_fma);

#endif
