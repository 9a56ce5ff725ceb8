/* The k largest entries of each row of a float32 matrix: the TopK SAE's choice of active latents.
 *
 * Per row, three steps over data that stays in L1:
 *   1. the row is cut into k groups and the least of the groups' maxima taken: k distinct entries are at least this
 *      bound, so the k largest are too;
 *   2. the entries at or above the bound are gathered, 8 compared at once (a compare, a movemask and a 256-entry
 *      compress table; about k * ln(k) of them for entries in no particular order);
 *   3. a bisection over their 32-bit order keys finds the k-th largest, and the kept entries are written in column
 *      order (insertion-sorted by value when asked; textsae.native sorts large k itself).
 * torch's CPU topk copies every (value, index) pair of the row first and then partially sorts them.
 *
 * Ties: among equal values the lower index is kept, so a row's result never depends on its batch or the thread
 * count. A NaN anywhere in a row stops the kernel with TEXTSAE_ENAN (torch orders NaN above every number; the caller
 * falls back to torch.topk then). Outputs are written row by row, so on an error they are partly written.
 */
#include <stdint.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include "kernels.h"

#define LANES8 8

typedef float vec8 __attribute__((vector_size(32), aligned(4)));
typedef int32_t ivec8 __attribute__((vector_size(32)));
typedef uint32_t uvec8 __attribute__((vector_size(32), aligned(4)));

typedef struct {
  const float *x;
  float *values;
  int64_t *indices;
  int64_t first_row, end_row, n_cols, row_stride, k;
  int sorted, status;
} TopkJob;

/* The larger of a and b in each lane (C has no ?: on vectors). */
static inline vec8 larger(vec8 a, vec8 b) {
  const ivec8 take_a = a > b;
  return (vec8)(((ivec8)a & take_a) | ((ivec8)b & ~take_a));
}

static inline int any_set(ivec8 mask) {
  uint64_t words[4];
  memcpy(words, &mask, sizeof(words));
  return (words[0] | words[1] | words[2] | words[3]) != 0;
}

/* Step 1: the least of the k groups' maxima; 0, or TEXTSAE_ENAN when the row holds a NaN. */
static int group_bound(const float *x, int64_t n_cols, int64_t k, float *bound) {
  const int64_t size = n_cols / k;
  float least = 0.0f;
  ivec8 nan = {0};
  for (int64_t group = 0; group < k; group++) {
    const int64_t start = group * size, end = group + 1 == k ? n_cols : start + size;
    int64_t c = start;
    float most = x[c];
    if (end - start >= 2 * LANES8) {
      vec8 m0 = *(const vec8 *)(x + c), m1 = *(const vec8 *)(x + c + LANES8);
      for (; c + 2 * LANES8 <= end; c += 2 * LANES8) {
        const vec8 a = *(const vec8 *)(x + c), b = *(const vec8 *)(x + c + LANES8);
        nan |= (a != a) | (b != b);
        m0 = larger(a, m0);
        m1 = larger(b, m1);
      }
      m0 = larger(m1, m0);
      for (int i = 0; i < LANES8; i++) most = m0[i] > most ? m0[i] : most;
    }
    for (; c < end; c++) {
      if (x[c] != x[c]) return TEXTSAE_ENAN;
      most = x[c] > most ? x[c] : most;
    }
    least = group == 0 || most < least ? most : least;
  }
  if (any_set(nan)) return TEXTSAE_ENAN;
  *bound = least;
  return 0;
}

/* A float's rank as an unsigned integer: a < b exactly when key(a) < key(b), and -0 and +0 have one key. */
static inline uint32_t order_key(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof(bits));
  if (bits == 0x80000000u) bits = 0;
  return bits & 0x80000000u ? ~bits : bits | 0x80000000u;
}

#ifdef __AVX2__
static uint8_t compress_order[256][8]; /* for each 8-bit mask, the lanes whose bit is set, in order */
static pthread_once_t compress_order_made = PTHREAD_ONCE_INIT;

static void make_compress_order(void) {
  for (int mask = 0; mask < 256; mask++)
    for (int lane = 0, n = 0; lane < LANES8; lane++)
      if (mask >> lane & 1) compress_order[mask][n++] = (uint8_t)lane;
}
#endif

/* Appends the keys and columns of x[c .. c + LANES8) that are >= bound to ck, ci (which have LANES8 spare slots past
 * the last one kept); returns how many. */
static inline int gather_block(const float *x, int64_t c, float bound, uint32_t *ck, int32_t *ci) {
#ifdef __AVX2__
  const __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + c), _mm256_setzero_ps()); /* -0 + 0 = +0 */
  const unsigned hits = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_set1_ps(bound), _CMP_GE_OQ));
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i keys = _mm256_xor_si256(bits, _mm256_or_si256(_mm256_srai_epi32(bits, 31), _mm256_set1_epi32(INT32_MIN)));
  const __m256i order = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)compress_order[hits]));
  const __m256i columns = _mm256_add_epi32(_mm256_set1_epi32((int32_t)c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  _mm256_storeu_si256((__m256i *)ck, _mm256_permutevar8x32_epi32(keys, order));
  _mm256_storeu_si256((__m256i *)ci, _mm256_permutevar8x32_epi32(columns, order));
  return __builtin_popcount(hits);
#else
  int found = 0;
  for (int lane = 0; lane < LANES8; lane++) {
    ck[found] = order_key(x[c + lane]);
    ci[found] = (int32_t)(c + lane);
    found += x[c + lane] >= bound;
  }
  return found;
#endif
}

/* How many of keys[0 .. n) are >= threshold (n a multiple of LANES8; padding keys are 0, below any threshold used). */
static inline int64_t count_at_least(const uint32_t *keys, int64_t n, uint32_t threshold) {
  ivec8 counts = {0};
  for (int64_t q = 0; q < n; q += LANES8) counts -= (ivec8)(*(const uvec8 *)(keys + q) >= threshold);
  int64_t total = 0;
  for (int i = 0; i < LANES8; i++) total += counts[i];
  return total;
}

/* The k largest entries of the row into values, indices: by column, or descending when `sorted`. ck, ci hold up to
 * n_cols + LANES8 candidates. */
static int topk_row(const float *x, int64_t n_cols, int64_t k, int sorted, float *values, int64_t *indices,
                    uint32_t *ck, int32_t *ci) {
  float bound;
  const int status = group_bound(x, n_cols, k, &bound);
  if (status) return status;
  int64_t found = 0, c = 0; /* step 2: every entry >= bound, in column order */
  for (; c + LANES8 <= n_cols; c += LANES8) found += gather_block(x, c, bound, ck + found, ci + found);
  for (; c < n_cols; c++)
    if (x[c] >= bound) {
      ck[found] = order_key(x[c]);
      ci[found++] = (int32_t)c;
    }
  const int64_t padded = (found + LANES8 - 1) / LANES8 * LANES8;
  memset(ck + found, 0, (size_t)(padded - found) * sizeof(uint32_t));
  uint32_t kth = 0; /* step 3: the k-th largest key, one bit at a time from the top */
  for (int bit = 31; bit >= 0; bit--) {
    const uint32_t trial = kth | (1u << bit);
    if (count_at_least(ck, padded, trial) >= k) kth = trial;
  }
  int64_t above = 0; /* the entries above the k-th, then the first of those equal to it */
  for (int64_t q = 0; q < found; q++) above += ck[q] > kth;
  int64_t out = 0, ties = k - above;
  for (int64_t q = 0; q < found && out < k; q++)
    if (ck[q] > kth || (ck[q] == kth && ties-- > 0)) {
      values[out] = x[ci[q]];
      indices[out++] = ci[q];
    }
  if (sorted) /* insertion sort, descending by value, then ascending by index */
    for (int64_t q = 1; q < k; q++) {
      const float v = values[q];
      const int64_t i = indices[q];
      int64_t at = q;
      for (; at > 0 && (values[at - 1] < v || (values[at - 1] == v && indices[at - 1] > i)); at--) {
        values[at] = values[at - 1];
        indices[at] = indices[at - 1];
      }
      values[at] = v;
      indices[at] = i;
    }
  return 0;
}

static void *topk_rows(void *arg) {
  TopkJob *job = arg;
  const size_t bytes = (size_t)(job->n_cols + LANES8) * (sizeof(uint32_t) + sizeof(int32_t));
  char *scratch = scratch_alloc(bytes);
  if (!scratch) {
    job->status = TEXTSAE_ENOMEM;
    return NULL;
  }
  int32_t *ci = (int32_t *)scratch;
  uint32_t *ck = (uint32_t *)(ci + job->n_cols + LANES8);
  for (int64_t r = job->first_row; r < job->end_row && !job->status; r++)
    job->status = topk_row(job->x + r * job->row_stride, job->n_cols, job->k, job->sorted, job->values + r * job->k,
                           job->indices + r * job->k, ck, ci);
  scratch_free(scratch);
  return NULL;
}

/* Whether this build gathers with AVX2; without it torch's topk is the faster one. */
int textsae_topk_vectorised(void) {
#ifdef __AVX2__
  return 1;
#else
  return 0;
#endif
}

/* values, indices (n_rows x k) = the k largest entries of each row of x (n_rows x n_cols, rows row_stride floats
 * apart), in descending order when `sorted`, else in no particular order. Requires 1 <= k <= n_cols. */
int textsae_topk(const float *x, int64_t n_rows, int64_t n_cols, int64_t row_stride, int64_t k, int sorted,
                 float *values, int64_t *indices, int threads) {
#ifdef __AVX2__
  pthread_once(&compress_order_made, make_compress_order);
#endif
  TopkJob jobs[MAX_THREADS];
  const int64_t per = rows_per_thread(n_rows, &threads);
  int n = 0;
  for (int t = 0; t < threads && (int64_t)t * per < n_rows; t++, n++)
    jobs[n] = (TopkJob){.x = x, .values = values, .indices = indices, .first_row = (int64_t)t * per,
                        .end_row = min64(n_rows, (int64_t)(t + 1) * per), .n_cols = n_cols,
                        .row_stride = row_stride, .k = k, .sorted = sorted};
  run_jobs(topk_rows, jobs, sizeof(jobs[0]), n);
  for (int t = 0; t < n; t++)
    if (jobs[t].status) return jobs[t].status;
  return 0;
}
