/* What textsae's native kernels share: their error codes, and threads (each kernel splits its rows or columns into
 * one job per thread). */
#ifndef TEXTSAE_KERNELS_H
#define TEXTSAE_KERNELS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define TEXTSAE_EOFFSETS 1 /* offsets[0] != 0, decreasing, or a row end past the entries */
#define TEXTSAE_EINDEX 2   /* an index outside [0, n_rows) */
#define TEXTSAE_ENOMEM 3
#define TEXTSAE_ENAN 4 /* a NaN where the kernel cannot order it (textsae_topk) */

#define MAX_THREADS 256

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
/* Zero-filled, page-aligned scratch memory, and its release (scratch.c: kept for reuse, never from malloc). */
void *scratch_alloc(size_t bytes);
void scratch_free(void *p);

#ifdef _OPENMP
/* Runs work on jobs[0 .. n) in the OpenMP runtime's threads. textsae.native builds this variant only where the library
 * then shares torch's OpenMP runtime: its pool, whose workers keep spinning for a while after each torch op, picks the
 * jobs up at once, where threads of our own would share the cores with those spinning workers. */
static inline void run_jobs(void *(*work)(void *), void *jobs, size_t job_size, int n) {
  char *job = jobs;
  if (n == 1) {
    work(job);
    return;
  }
#pragma omp parallel for num_threads(n) schedule(static, 1)
  for (int t = 0; t < n; t++) work(job + t * job_size);
}
#else
/* Runs work on jobs[0 .. n): the first in the caller's thread, the others in new threads (or, for any thread that
 * cannot be started, in the caller's thread afterwards). */
static inline void run_jobs(void *(*work)(void *), void *jobs, size_t job_size, int n) {
  pthread_t ids[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  char *job = jobs;
  for (int t = 1; t < n; t++) started[t] = pthread_create(&ids[t], NULL, work, job + t * job_size) == 0;
  if (n > 0) work(job);
  for (int t = 1; t < n; t++) {
    if (started[t])
      pthread_join(ids[t], NULL);
    else
      work(job + t * job_size);
  }
}
#endif

/* Rows per thread when threads split n_rows rows (clamping *threads to [1, MAX_THREADS]). */
static inline int64_t rows_per_thread(int64_t n_rows, int *threads) {
  if (*threads < 1) *threads = 1;
  if (*threads > MAX_THREADS) *threads = MAX_THREADS;
  return (n_rows + *threads - 1) / *threads;
}

#endif
