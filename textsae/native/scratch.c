/* The kernels' scratch memory: zero-filled, page-aligned blocks straight from the kernel (mmap), never from malloc,
 * kept for reuse once freed.
 *
 * Not malloc: the host process keeps its freed weight-sized blocks in malloc's heap for reuse
 * (textsae.runtime.keep_freed_memory), and a small scratch block carved out of one of them would stop the next
 * weight-sized tensor from fitting, growing the heap by a whole block.
 *
 * Kept: a training step calls the kernels several times with the same sizes, and a fresh mapping costs a page fault
 * on the first touch of each 4 KB page and a TLB shootdown on every core when unmapped. Mapped and unmapped on each
 * call, that took about half of dense_t_sparse_mm's time at d_in 384, 4,096 latents, batch 1,024 (perf, 2-vCPU VM).
 * Up to KEPT_BLOCKS freed blocks, KEPT_BYTES in all, wait for a request they fit; a kept block is zeroed again when
 * handed out. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -std=c11 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels.h"

#define HEADER 64                    /* before each block: its mapped size */
#define KEPT_BLOCKS 32
#define KEPT_BYTES ((size_t)64 << 20) /* 64 MB */

static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static char *kept[KEPT_BLOCKS]; /* mapping bases; each starts with its size */
static int n_kept;
static size_t kept_bytes;
static pthread_once_t fork_handlers_set = PTHREAD_ONCE_INIT;

/* A fork while another thread holds the lock would leave the child's copy locked for good. */
static void lock_before_fork(void) { pthread_mutex_lock(&kept_lock); }
static void unlock_after_fork(void) { pthread_mutex_unlock(&kept_lock); }
static void set_fork_handlers(void) { pthread_atfork(lock_before_fork, unlock_after_fork, unlock_after_fork); }

static size_t mapped_size(size_t bytes) {
  const size_t page = 4096;
  return (bytes + HEADER + page - 1) / page * page;
}

void *scratch_alloc(size_t bytes) {
  pthread_once(&fork_handlers_set, set_fork_handlers);
  const size_t total = mapped_size(bytes);
  char *base = NULL;
  pthread_mutex_lock(&kept_lock);
  int best = -1; /* the smallest kept block that fits, and at most 4 times the size: a small request does not hold
                    a large block */
  for (int i = 0; i < n_kept; i++) {
    const size_t size = *(size_t *)kept[i];
    if (size >= total && size / 4 <= total && (best < 0 || size < *(size_t *)kept[best])) best = i;
  }
  if (best >= 0) {
    base = kept[best];
    kept[best] = kept[--n_kept];
    kept_bytes -= *(size_t *)base;
  }
  pthread_mutex_unlock(&kept_lock);
  if (base) {
    memset(base + HEADER, 0, bytes);
    return base + HEADER;
  }
  base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return NULL;
  *(size_t *)base = total;
  return base + HEADER;
}

void scratch_free(void *p) {
  if (!p) return;
  char *base = (char *)p - HEADER;
  const size_t total = *(size_t *)base;
  pthread_mutex_lock(&kept_lock);
  const int keep = n_kept < KEPT_BLOCKS && kept_bytes + total <= KEPT_BYTES;
  if (keep) {
    kept[n_kept++] = base;
    kept_bytes += total;
  }
  pthread_mutex_unlock(&kept_lock);
  if (!keep) munmap(base, total);
}
