/*
 * parallel.h - splitting one layer's work over the cores.
 *
 * One process-wide pool of worker threads. cs_parallel_for splits [0, n) into one
 * contiguous range per thread and runs fn on each, the caller taking the first.
 * Only one caller uses the pool at a time: a concurrent caller (another request
 * thread of the server, which is already running in parallel with others) simply
 * runs its whole range itself, so the pool never oversubscribes the machine.
 * OpenBLAS is kept single-threaded inside the ranges: its own threads would spin
 * against ours for the same cores.
 */
#ifndef CS_PARALLEL_H
#define CS_PARALLEL_H

#define CS_MAX_WORKERS 16

/* fn(ctx, begin, end, worker): worker is 0 .. cs_parallel_threads()-1, unique
 * among the ranges of one call (index per-worker scratch with it). */
typedef void (*cs_range_fn)(void *ctx, long begin, long end, int worker);

/* At most n ranges for the calls made by the calling thread (0: no limit beyond the
 * pool's size). A server's request threads set 1: requests already run side by side,
 * while a training job on its own thread still uses every core. Returns the limit it
 * replaces, for a caller that sets one for a while. */
int cs_parallel_limit_this_thread(int n);

/* Threads the pool splits work over (1 = everything runs in the caller). */
void cs_parallel_set_threads(int n);
int cs_parallel_threads(void);
/* Waking the pool costs some microseconds: a range should carry at least this many
 * elementwise operations (callers turn it into a grain), so that single-image passes
 * stay on the caller's thread. */
#define CS_PARALLEL_MIN_WORK 65536L

/* Parts a call from this thread splits over when the pool is free: the pool's threads,
 * or fewer when this thread is limited (cs_parallel_limit_this_thread). */
int cs_parallel_parts(void);

/* Grain for n units of `work_per_unit` operations each, rounded up to a multiple of `align`. */
long cs_parallel_grain(long work_per_unit, long align);

/* Splits [0, n) into at most max_parts ranges (0 = as many as threads) whose
 * boundaries fall on multiples of `grain`. */
void cs_parallel_run(long n, long grain, int max_parts, cs_range_fn fn, void *ctx);

/* Treat denormal floats as zero in the calling thread (the pool's workers always
 * do): tiny gradients late in training otherwise fall into the slow microcode path
 * of the FPU. Values below 1e-38 change nothing a float32 network can tell. */
void cs_flush_denormals(void);

#endif
