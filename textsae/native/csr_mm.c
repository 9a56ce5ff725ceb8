/* Sparse rows times a dense matrix, and its backward, for float32 on the CPU.
 *
 *   out[b, :] = sum over e in [offsets[b], offsets[b+1]) of values[e] * weight[indices[e], :]
 *
 * with `weight` (n_rows x d) and `out` (B x d) row-major. This is the SAE decoder's product (the rows are each
 * document's active latents) and the sparse-input encoder's (the rows are each document's terms).
 *
 * Both passes walk the entries grouped by weight row (a counting sort, CSC order) inside column blocks of `block`
 * columns: each weight row's slice is read from memory once, contiguously, with the next rows' slices prefetched,
 * while the (B x block) slab of `out` or of its gradient stays in cache. Going row by row over the batch instead
 * re-reads every weight slice once per entry that uses it, from memory when the weight is larger than the cache.
 * The forward's threads split the columns and the backward's the weight rows, so no two threads write the same memory,
 * and every sum runs in a fixed order: the same inputs and thread count give the same bits (the backward's, for any
 * thread count).
 *
 * The backward can start the weight's gradient from a rank-one term, grad_weight[j, c] = u[j] * r[c], instead of
 * zero: the centred encoder's -c (x) sum_b G_b, written in the same pass.
 *
 * Further down: the sparse-input encoder's gradient through each document's kept latents (textsae_csr_t_sparse_mm),
 * and the Adam steps fused with what surrounds them, one pass per weight row (textsae_decoder_adam_step,
 * textsae_encoder_adam_step, with textsae_center_product summing c.W as the latter does).
 *
 * Built on first use by textsae.native with the system's C compiler; Python falls back to torch's kernels when it
 * cannot be built. Every function returns 0, or one of the TEXTSAE_E* codes without writing its outputs
 * (kernels.h lists them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"

#define TEXTSAE_ABI 10

typedef float vec __attribute__((vector_size(32), aligned(4))); /* 8 floats, any alignment */
#define LANES 8
#define FORWARD_CHUNK 64  /* columns of one weight row held in registers by the forward */
#define BACKWARD_CHUNK 32 /* by the backward, which also holds as many gradient sums */
#define PREFETCH_ROWS 8   /* weight rows ahead whose slices are prefetched */

int textsae_native_abi(void) { return TEXTSAE_ABI; }

/* Where the kernels run their jobs (kernels.h): an address inside the OpenMP runtime this library is bound to, which
 * textsae.native looks up in the process's mappings; NULL when built without OpenMP (threads of its own). */
const void *textsae_native_openmp_runtime(void) {
#ifdef _OPENMP
  return (const void *)&omp_get_max_threads;
#else
  return NULL;
#endif
}

typedef struct {
  int64_t *start; /* (n_rows + 1): entries of weight row j are entry[start[j] .. start[j+1]) */
  int64_t *entry; /* (nnz): entry numbers, grouped by weight row, in increasing order within a row */
  int64_t *row;   /* (nnz): the batch row of each entry */
  int64_t max_per_row;
} Grouping;

static void free_grouping(Grouping *g) {
  scratch_free(g->start);
  scratch_free(g->entry);
  scratch_free(g->row);
}

static int group_entries(const int64_t *offsets, const int64_t *indices, int64_t batch, int64_t n_rows,
                         Grouping *g) {
  memset(g, 0, sizeof(*g));
  if (offsets[0] != 0) return TEXTSAE_EOFFSETS;
  for (int64_t b = 0; b < batch; b++)
    if (offsets[b + 1] < offsets[b]) return TEXTSAE_EOFFSETS;
  const int64_t nnz = offsets[batch];
  for (int64_t e = 0; e < nnz; e++)
    if (indices[e] < 0 || indices[e] >= n_rows) return TEXTSAE_EINDEX;
  g->start = scratch_alloc(((size_t)n_rows + 1) * sizeof(int64_t));
  g->entry = scratch_alloc(((size_t)nnz + 1) * sizeof(int64_t));
  g->row = scratch_alloc(((size_t)nnz + 1) * sizeof(int64_t));
  int64_t *fill = scratch_alloc(((size_t)n_rows + 1) * sizeof(int64_t));
  if (!g->start || !g->entry || !g->row || !fill) {
    scratch_free(fill);
    free_grouping(g);
    return TEXTSAE_ENOMEM;
  }
  for (int64_t b = 0; b < batch; b++)
    for (int64_t e = offsets[b]; e < offsets[b + 1]; e++) {
      g->row[e] = b;
      g->start[indices[e] + 1]++;
    }
  for (int64_t j = 0; j < n_rows; j++) {
    if (g->start[j + 1] > g->max_per_row) g->max_per_row = g->start[j + 1];
    g->start[j + 1] += g->start[j];
  }
  memcpy(fill, g->start, (size_t)n_rows * sizeof(int64_t));
  for (int64_t e = 0; e < nnz; e++) g->entry[fill[indices[e]]++] = e;
  scratch_free(fill);
  return 0;
}

typedef struct {
  const float *values, *weight, *grad_out, *rank_one_rows, *rank_one_columns; /* u (n_rows), r (d), or NULL */
  float *out, *grad_weight, *grad_values; /* grad_values (nnz): each entry's, added over the column blocks */
  const Grouping *groups;
  int64_t batch, n_rows, d, block, first_column, end_column;
  int64_t first_row, end_row; /* the backward's weight rows */
  vec *dots; /* (max_per_row): per entry of the current weight row, the dot product's lanes */
} Job;

static inline void prefetch(const float *p, int64_t n) {
  for (int64_t c = 0; c < n; c += 64 / (int64_t)sizeof(float)) __builtin_prefetch(p + c, 0, 3);
}

static void *forward_columns(void *arg) {
  const Job *job = arg;
  const Grouping *g = job->groups;
  const int64_t d = job->d;
  for (int64_t first = job->first_column; first < job->end_column; first += job->block) {
    const int64_t width = min64(job->block, job->end_column - first);
    const int64_t full = width / FORWARD_CHUNK * FORWARD_CHUNK;
    for (int64_t b = 0; b < job->batch; b++) memset(job->out + b * d + first, 0, (size_t)width * sizeof(float));
    for (int64_t j = 0; j < job->n_rows; j++) {
      const int64_t ahead = j + PREFETCH_ROWS;
      if (ahead < job->n_rows && g->start[ahead] != g->start[ahead + 1])
        prefetch(job->weight + ahead * d + first, width);
      const int64_t q0 = g->start[j], q1 = g->start[j + 1];
      if (q0 == q1) continue;
      const float *w = job->weight + j * d + first;
      for (int64_t c = 0; c < full; c += FORWARD_CHUNK) {
        vec held[FORWARD_CHUNK / LANES];
        for (int i = 0; i < FORWARD_CHUNK / LANES; i++) held[i] = ((const vec *)(w + c))[i];
        for (int64_t q = q0; q < q1; q++) {
          const float v = job->values[g->entry[q]];
          vec *o = (vec *)(job->out + g->row[g->entry[q]] * d + first + c);
          for (int i = 0; i < FORWARD_CHUNK / LANES; i++) o[i] += v * held[i];
        }
      }
      for (int64_t q = q0; q < q1 && full < width; q++) {
        const float v = job->values[g->entry[q]];
        float *o = job->out + g->row[g->entry[q]] * d + first;
        for (int64_t c = full; c < width; c++) o[c] += v * w[c];
      }
    }
  }
  return NULL;
}

static void *backward_columns(void *arg) {
  const Job *job = arg;
  const Grouping *g = job->groups;
  const int64_t d = job->d;
  const int want_values = job->grad_values != NULL, want_weight = job->grad_weight != NULL;
  for (int64_t first = job->first_column; first < job->end_column; first += job->block) {
    const int64_t width = min64(job->block, job->end_column - first);
    const int64_t full = width / BACKWARD_CHUNK * BACKWARD_CHUNK;
    for (int64_t j = job->first_row; j < job->end_row; j++) {
      const int64_t q0 = g->start[j], q1 = g->start[j + 1];
      const int64_t ahead = j + PREFETCH_ROWS;
      if (want_values && ahead < job->end_row && g->start[ahead] != g->start[ahead + 1])
        prefetch(job->weight + ahead * d + first, width);
      float *gw = want_weight ? job->grad_weight + j * d + first : NULL;
      const float u = job->rank_one_rows ? job->rank_one_rows[j] : 0.0f;
      const float *r = job->rank_one_rows ? job->rank_one_columns + first : NULL;
      if (q0 == q1) {
        if (gw && r)
          for (int64_t c = 0; c < width; c++) gw[c] = u * r[c];
        else if (gw)
          memset(gw, 0, (size_t)width * sizeof(float));
        continue;
      }
      const float *w = job->weight + j * d + first;
      for (int64_t q = q0; q < q1; q++) job->dots[q - q0] = (vec){0};
      for (int64_t c = 0; c < full; c += BACKWARD_CHUNK) {
        vec held[BACKWARD_CHUNK / LANES], sums[BACKWARD_CHUNK / LANES];
        for (int i = 0; i < BACKWARD_CHUNK / LANES; i++) {
          held[i] = want_values ? ((const vec *)(w + c))[i] : (vec){0};
          sums[i] = r ? u * ((const vec *)(r + c))[i] : (vec){0};
        }
        for (int64_t q = q0; q < q1; q++) {
          const int64_t e = g->entry[q];
          const vec *go = (const vec *)(job->grad_out + g->row[e] * d + first + c);
          if (want_values) {
            vec dot = go[0] * held[0];
            for (int i = 1; i < BACKWARD_CHUNK / LANES; i++) dot += go[i] * held[i];
            job->dots[q - q0] += dot;
          }
          const float v = job->values[e];
          for (int i = 0; i < BACKWARD_CHUNK / LANES; i++) sums[i] += v * go[i];
        }
        if (gw)
          for (int i = 0; i < BACKWARD_CHUNK / LANES; i++) ((vec *)(gw + c))[i] = sums[i];
      }
      if (gw)
        for (int64_t c = full; c < width; c++) gw[c] = r ? u * r[c] : 0.0f;
      for (int64_t q = q0; q < q1; q++) {
        const int64_t e = g->entry[q];
        const float *go = job->grad_out + g->row[e] * d + first;
        const float v = job->values[e];
        float dot = 0.0f;
        for (int i = 0; i < LANES; i++) dot += job->dots[q - q0][i];
        for (int64_t c = full; c < width; c++) {
          dot += go[c] * w[c];
          if (gw) gw[c] += v * go[c];
        }
        if (want_values) job->grad_values[e] += dot;
      }
    }
  }
  return NULL;
}

/* The forward: [0, d) split into up to `threads` column ranges, multiples of FORWARD_CHUNK but the last, one job
 * each (run_jobs). Each thread reads only its columns of the weight, once, however large the weight. */
static void run_forward(Job *base, int threads) {
  Job jobs[MAX_THREADS];
  if (threads < 1) threads = 1;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  int64_t per = (base->d + threads - 1) / threads;
  per = (per + FORWARD_CHUNK - 1) / FORWARD_CHUNK * FORWARD_CHUNK;
  int n = 0;
  for (int t = 0; t < threads && (int64_t)t * per < base->d; t++, n++) {
    jobs[n] = *base;
    jobs[n].first_column = (int64_t)t * per;
    jobs[n].end_column = min64(base->d, (int64_t)(t + 1) * per);
  }
  run_jobs(forward_columns, jobs, sizeof(Job), n);
}

int textsae_csr_mm(const int64_t *offsets, const int64_t *indices, const float *values, int64_t batch, int64_t n_rows,
                   const float *weight, int64_t d, float *out, int64_t block, int threads) {
  Grouping groups;
  int status = group_entries(offsets, indices, batch, n_rows, &groups);
  if (status) return status;
  Job job = {.values = values, .weight = weight, .out = out, .groups = &groups, .batch = batch, .n_rows = n_rows,
             .d = d, .block = block < 1 ? 1 : block};
  run_forward(&job, threads);
  free_grouping(&groups);
  return 0;
}

/* The backward: threads take ranges of weight rows, each with all columns, so that no two threads write the same
 * gradient row or entry, and each entry's dot product is summed in one thread: the same bits for any thread count.
 * (Split by columns, as the forward, two threads ran slower than one at d 384, 4.3 against 2.7 ms in an ad-hoc
 * loop: each thread's stretch of a gradient row borders the other's; likely the cores' prefetchers pull the lines
 * past the border, which the other then writes. The VM it was measured on exposes no cache counters to confirm it.)
 * The ranges hold about equal numbers of entries, each row counted as one entry more. */
int textsae_csr_mm_backward(const int64_t *offsets, const int64_t *indices, const float *values, int64_t batch,
                            int64_t n_rows, const float *weight, int64_t d, const float *grad_out,
                            const float *rank_one_rows, const float *rank_one_columns, float *grad_weight,
                            float *grad_values, int64_t block, int threads) {
  Grouping groups;
  int status = group_entries(offsets, indices, batch, n_rows, &groups);
  if (status) return status;
  const int64_t nnz = offsets[batch];
  if (threads < 1) threads = 1;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  if (grad_values) memset(grad_values, 0, (size_t)nnz * sizeof(float));
  Job jobs[MAX_THREADS];
  int n = 0;
  const int64_t total = nnz + n_rows;
  for (int64_t j = 0; n < threads && j < n_rows; n++) {
    const int64_t share = total * (n + 1) / threads; /* rows before the end of this range: start[j] + j < share */
    int64_t end = j + 1;
    while (end < n_rows && groups.start[end] + end < share) end++;
    if (n == threads - 1) end = n_rows;
    jobs[n] = (Job){.values = values, .weight = weight, .grad_out = grad_out, .rank_one_rows = rank_one_rows,
                    .rank_one_columns = rank_one_columns, .grad_weight = grad_weight, .grad_values = grad_values,
                    .groups = &groups, .batch = batch, .n_rows = n_rows, .d = d, .block = block < 1 ? 1 : block,
                    .first_column = 0, .end_column = d, .first_row = j, .end_row = end};
    jobs[n].dots = scratch_alloc(((size_t)groups.max_per_row + 1) * sizeof(vec));
    if (!jobs[n].dots) status = TEXTSAE_ENOMEM;
    j = end;
  }
  if (!status) run_jobs(backward_columns, jobs, sizeof(Job), n);
  for (int t = 0; t < n; t++) scratch_free(jobs[t].dots);
  free_grouping(&groups);
  return status;
}

/* The same product for a weight with few rows and many columns whose rows the batch reads many times each (the
 * decoder: up to 4,096 latents, tens of thousands of terms), one panel of PANEL columns at a time:
 *
 *   1. the panel's slice of every row the batch uses is copied, rows ahead prefetched, into a contiguous
 *      (n_rows x PANEL) scratch that stays in the core's L2 cache (1 MB at 4,096 rows);
 *   2. each batch row's sum is then gathered from that scratch and held in registers: reads from L2 only, one store
 *      per batch row and panel (plain stores: non-temporal ones measured slower, 91 against 80 ms).
 *
 * textsae_csr_mm instead adds every entry's slice into a (B x block) slab of `out` that lives in L3: a read and a
 * write of the slab per entry, which costs more once each row has several entries; with few, copying the panels costs
 * more. Threads split the panels; each sum runs in the row's entry order. */
#define PANEL 64

typedef struct {
  const int64_t *offsets, *indices;
  const float *values, *weight;
  float *out;
  const Grouping *groups;
  int64_t batch, n_rows, d, first_panel, end_panel;
  float *weight_panel; /* scratch: (n_rows x PANEL) */
} PanelJob;

static void *panel_columns(void *arg) {
  const PanelJob *job = arg;
  const Grouping *g = job->groups;
  float *restrict wp = job->weight_panel;
  for (int64_t p = job->first_panel; p < job->end_panel; p++) {
    const int64_t first = p * PANEL, width = min64(PANEL, job->d - first);
    for (int64_t j = 0; j < job->n_rows; j++) {
      if (j + PREFETCH_ROWS < job->n_rows) prefetch(job->weight + (j + PREFETCH_ROWS) * job->d + first, width);
      if (g->start[j] == g->start[j + 1]) continue; /* a row no entry reads */
      memcpy(wp + j * PANEL, job->weight + j * job->d + first, (size_t)width * sizeof(float));
      if (width < PANEL) memset(wp + j * PANEL + width, 0, (size_t)(PANEL - width) * sizeof(float));
    }
    for (int64_t b = 0; b < job->batch; b++) {
      vec sums[PANEL / LANES] = {{0}};
      for (int64_t e = job->offsets[b]; e < job->offsets[b + 1]; e++) {
        const vec *row = (const vec *)(wp + job->indices[e] * PANEL);
        const float v = job->values[e];
        for (int i = 0; i < PANEL / LANES; i++) sums[i] += v * row[i];
      }
      float *o = job->out + b * job->d + first;
      if (width < PANEL)
        for (int64_t c = 0; c < width; c++) o[c] = sums[c / LANES][c % LANES];
      else
        for (int i = 0; i < PANEL / LANES; i++) ((vec *)o)[i] = sums[i];
    }
  }
  return NULL;
}

int textsae_panel_mm(const int64_t *offsets, const int64_t *indices, const float *values, int64_t batch,
                     int64_t n_rows, const float *weight, int64_t d, float *out, int threads) {
  Grouping groups;
  int status = group_entries(offsets, indices, batch, n_rows, &groups);
  if (status) return status;
  PanelJob jobs[MAX_THREADS];
  const int64_t n_panels = (d + PANEL - 1) / PANEL;
  const int64_t per = rows_per_thread(n_panels, &threads);
  int n = 0;
  for (int t = 0; t < threads && (int64_t)t * per < n_panels; t++, n++) {
    jobs[n] = (PanelJob){.offsets = offsets, .indices = indices, .values = values, .weight = weight, .out = out,
                         .groups = &groups, .batch = batch, .n_rows = n_rows, .d = d,
                         .first_panel = (int64_t)t * per, .end_panel = min64(n_panels, (int64_t)(t + 1) * per)};
    jobs[n].weight_panel = scratch_alloc((size_t)n_rows * PANEL * sizeof(float));
    if (!jobs[n].weight_panel) status = TEXTSAE_ENOMEM;
  }
  if (!status) run_jobs(panel_columns, jobs, sizeof(PanelJob), n);
  for (int t = 0; t < n; t++) scratch_free(jobs[t].weight_panel);
  free_grouping(&groups);
  return status;
}

static inline float lanes_sum(vec x) {
  float total = 0.0f;
  for (int i = 0; i < LANES; i++) total += x[i];
  return total;
}

/* The gradients of the same product by panels (textsae_csr_mm_backward's, for the decoder of textsae_panel_mm): per
 * panel of PANEL columns, the output gradient's slice of every batch row is copied into a contiguous (batch x PANEL)
 * scratch that stays in L2, then each weight row's entries read it from there: the weight gradient's panel summed in
 * registers and stored once, each entry's dot product kept as LANES partial sums (one vector per entry, in the
 * grouping's order) and reduced once after the last panel. */
typedef struct {
  const float *values, *weight, *grad_out, *rank_one_rows, *rank_one_columns;
  float *grad_weight, *grad_values; /* grad_values: this thread's partial sums, (nnz) */
  const Grouping *groups;
  int64_t batch, n_rows, d, first_panel, end_panel;
  const int64_t *entry_row; /* (nnz), in the grouping's order: each entry's batch row, times PANEL */
  const float *entry_value; /* (nnz), in the grouping's order */
  float *grad_panel;        /* scratch: (batch x PANEL) */
  vec *dots;                /* scratch: (nnz), in the grouping's order */
} PanelBackwardJob;

static void *panel_backward_columns(void *arg) {
  const PanelBackwardJob *job = arg;
  const Grouping *g = job->groups;
  const int64_t d = job->d;
  float *restrict gp = job->grad_panel;
  vec *restrict dots = job->dots;
  for (int64_t p = job->first_panel; p < job->end_panel; p++) {
    const int64_t first = p * PANEL, width = min64(PANEL, d - first);
    for (int64_t b = 0; b < job->batch; b++) {
      if (b + PREFETCH_ROWS < job->batch) prefetch(job->grad_out + (b + PREFETCH_ROWS) * d + first, width);
      memcpy(gp + b * PANEL, job->grad_out + b * d + first, (size_t)width * sizeof(float));
      if (width < PANEL) memset(gp + b * PANEL + width, 0, (size_t)(PANEL - width) * sizeof(float));
    }
    for (int64_t j = 0; j < job->n_rows; j++) {
      const int64_t q0 = g->start[j], q1 = g->start[j + 1];
      if (j + PREFETCH_ROWS < job->n_rows) prefetch(job->weight + (j + PREFETCH_ROWS) * d + first, width);
      vec held[PANEL / LANES], sums[PANEL / LANES];
      const float u = job->rank_one_rows ? job->rank_one_rows[j] : 0.0f;
      for (int i = 0; i < PANEL / LANES; i++) sums[i] = (vec){0};
      if (job->rank_one_rows)
        for (int64_t c = 0; c < width; c++) sums[c / LANES][c % LANES] = u * job->rank_one_columns[first + c];
      if (job->grad_values) {
        const float *w = job->weight + j * d + first;
        for (int i = 0; i < PANEL / LANES; i++) held[i] = (vec){0};
        if (width == PANEL)
          for (int i = 0; i < PANEL / LANES; i++) held[i] = ((const vec *)w)[i];
        else
          for (int64_t c = 0; c < width; c++) held[c / LANES][c % LANES] = w[c];
      }
      for (int64_t q = q0; q < q1; q++) {
        const vec *go = (const vec *)(gp + job->entry_row[q]);
        if (job->grad_values) {
          vec dot = go[0] * held[0];
          for (int i = 1; i < PANEL / LANES; i++) dot += go[i] * held[i];
          dots[q] = p == job->first_panel ? dot : dots[q] + dot;
        }
        const float v = job->entry_value[q];
        for (int i = 0; i < PANEL / LANES; i++) sums[i] += v * go[i];
      }
      if (job->grad_weight) {
        float *gw = job->grad_weight + j * d + first;
        if (width == PANEL)
          for (int i = 0; i < PANEL / LANES; i++) ((vec *)gw)[i] = sums[i];
        else
          for (int64_t c = 0; c < width; c++) gw[c] = sums[c / LANES][c % LANES];
      }
    }
  }
  if (job->grad_values && job->first_panel < job->end_panel)
    for (int64_t q = 0; q < g->start[job->n_rows]; q++) job->grad_values[g->entry[q]] = lanes_sum(dots[q]);
  return NULL;
}

/* Each entry's batch row times PANEL (its offset in a (B x PANEL) panel) and its value, laid out once in the
 * grouping's order: the panel kernels read them on every panel, where looking up the entry and then its row took
 * twice the time (151 against 78.5 ms for the panel backward). Both arrays come from scratch_alloc, also on failure. */
static int panel_entries(const Grouping *g, const float *values, int64_t nnz, int64_t **row, float **value) {
  *row = scratch_alloc(((size_t)nnz + 1) * sizeof(int64_t));
  *value = scratch_alloc(((size_t)nnz + 1) * sizeof(float));
  if (!*row || !*value) return TEXTSAE_ENOMEM;
  for (int64_t q = 0; q < nnz; q++) {
    (*row)[q] = g->row[g->entry[q]] * PANEL;
    (*value)[q] = values[g->entry[q]];
  }
  return 0;
}

int textsae_panel_mm_backward(const int64_t *offsets, const int64_t *indices, const float *values, int64_t batch,
                              int64_t n_rows, const float *weight, int64_t d, const float *grad_out,
                              const float *rank_one_rows, const float *rank_one_columns, float *grad_weight,
                              float *grad_values, int threads) {
  Grouping groups;
  int status = group_entries(offsets, indices, batch, n_rows, &groups);
  if (status) return status;
  const int64_t nnz = offsets[batch];
  int64_t *entry_row;
  float *entry_value;
  status = panel_entries(&groups, values, nnz, &entry_row, &entry_value);
  PanelBackwardJob jobs[MAX_THREADS];
  const int64_t n_panels = (d + PANEL - 1) / PANEL;
  const int64_t per = rows_per_thread(n_panels, &threads);
  int n = 0;
  for (int t = 0; t < threads && (int64_t)t * per < n_panels; t++, n++) {
    jobs[n] = (PanelBackwardJob){.values = values, .weight = weight, .grad_out = grad_out,
                                 .rank_one_rows = rank_one_rows, .rank_one_columns = rank_one_columns,
                                 .grad_weight = grad_weight, .groups = &groups, .entry_row = entry_row,
                                 .entry_value = entry_value, .batch = batch, .n_rows = n_rows,
                                 .d = d, .first_panel = (int64_t)t * per,
                                 .end_panel = min64(n_panels, (int64_t)(t + 1) * per)};
    jobs[n].grad_panel = scratch_alloc((size_t)batch * PANEL * sizeof(float));
    if (!jobs[n].grad_panel) status = TEXTSAE_ENOMEM;
    if (grad_values) {
      jobs[n].dots = scratch_alloc(((size_t)nnz + 1) * sizeof(vec));
      jobs[n].grad_values = scratch_alloc(((size_t)nnz + 1) * sizeof(float));
      if (!jobs[n].dots || !jobs[n].grad_values) status = TEXTSAE_ENOMEM;
    }
  }
  if (!status) run_jobs(panel_backward_columns, jobs, sizeof(PanelBackwardJob), n);
  if (!status && grad_values) {
    memset(grad_values, 0, (size_t)nnz * sizeof(float));
    for (int t = 0; t < n; t++)
      for (int64_t e = 0; e < nnz; e++) grad_values[e] += jobs[t].grad_values[e];
  }
  for (int t = 0; t < n; t++) {
    scratch_free(jobs[t].grad_panel);
    scratch_free(jobs[t].dots);
    scratch_free(jobs[t].grad_values);
  }
  scratch_free(entry_row);
  scratch_free(entry_value);
  free_grouping(&groups);
  return status;
}

/* One Adam step of the decoder's rows under the unit-norm constraint, fused into one pass over each row:
 *
 *   g <- g - (<g, w> / |w|^2) w            (project: the gradient loses its component along the row)
 *   m <- m + (1 - beta1) (g - m);  v <- beta2 v + (1 - beta2) g^2
 *   w <- w - (lr / bias_correction1) m / (sqrt(v) / sqrt(bias_correction2) + eps)      (torch.optim.Adam's update)
 *
 * The scalars come computed in double (step_size = lr / bias_correction1, 1 - beta1, 1 - beta2), as torch computes
 * them: 1.0f - 0.999f in float is off by 1.3e-5 relative, a drift in v rather than rounding noise.
 *   w <- w / |w|                           (renormalise)
 *
 * Done as three torch passes (projection, Adam, renormalisation) each weight-sized tensor crosses memory about 16 times
 * a step; one row at a time (w, g, m and v of a row stay in cache between the steps) it crosses 7 times. Threads
 * split the rows. `grad` is overwritten with the projected gradient. */
typedef struct {
  float *weight, *grad, *exp_avg, *exp_avg_sq;
  int64_t first_row, end_row, d;
  float step_size, one_minus_beta1, beta2, one_minus_beta2, eps, bias_correction2_sqrt;
  int project, renormalise;
} AdamJob;

static float row_dot(const float *a, const float *b, int64_t d) {
  vec acc0 = {0}, acc1 = {0};
  int64_t c = 0;
  for (; c + 2 * LANES <= d; c += 2 * LANES) {
    acc0 += *(const vec *)(a + c) * *(const vec *)(b + c);
    acc1 += *(const vec *)(a + c + LANES) * *(const vec *)(b + c + LANES);
  }
  float total = lanes_sum(acc0 + acc1);
  for (; c < d; c++) total += a[c] * b[c];
  return total;
}

static void *adam_rows(void *arg) {
  const AdamJob *job = arg;
  const int64_t d = job->d;
  const float step_size = job->step_size;
  for (int64_t j = job->first_row; j < job->end_row; j++) {
    float *restrict w = job->weight + j * d, *restrict g = job->grad + j * d;
    float *restrict m = job->exp_avg + j * d, *restrict v = job->exp_avg_sq + j * d;
    float along = 0.0f;
    if (job->project) {
      float sq = row_dot(w, w, d);
      along = row_dot(g, w, d) / (sq > 1.17549435e-38f ? sq : 1.17549435e-38f); /* FLT_MIN, as the torch path */
    }
    for (int64_t c = 0; c < d; c++) {
      const float gc = g[c] - along * w[c];
      g[c] = gc;
      m[c] += job->one_minus_beta1 * (gc - m[c]);
      v[c] = job->beta2 * v[c] + job->one_minus_beta2 * gc * gc;
      w[c] -= step_size * m[c] / (__builtin_sqrtf(v[c]) / job->bias_correction2_sqrt + job->eps);
    }
    if (job->renormalise) {
      float norm = __builtin_sqrtf(row_dot(w, w, d));
      const float scale = 1.0f / (norm > 1.17549435e-38f ? norm : 1.17549435e-38f);
      for (int64_t c = 0; c < d; c++) w[c] *= scale;
    }
  }
  return NULL;
}

int textsae_decoder_adam_step(float *weight, float *grad, float *exp_avg, float *exp_avg_sq, int64_t n_rows, int64_t d,
                              float step_size, float one_minus_beta1, float beta2, float one_minus_beta2,
                              float eps, float bias_correction2_sqrt, int project, int renormalise, int threads) {
  AdamJob jobs[MAX_THREADS];
  const int64_t per = rows_per_thread(n_rows, &threads);
  int n = 0;
  for (int t = 0; t < threads && (int64_t)t * per < n_rows; t++, n++) {
    jobs[n] = (AdamJob){.weight = weight, .grad = grad, .exp_avg = exp_avg, .exp_avg_sq = exp_avg_sq,
                        .first_row = (int64_t)t * per, .end_row = min64(n_rows, (int64_t)(t + 1) * per), .d = d,
                        .step_size = step_size, .one_minus_beta1 = one_minus_beta1, .beta2 = beta2,
                        .one_minus_beta2 = one_minus_beta2, .eps = eps,
                        .bias_correction2_sqrt = bias_correction2_sqrt, .project = project,
                        .renormalise = renormalise};
  }
  run_jobs(adam_rows, jobs, sizeof(jobs[0]), n);
  return 0;
}

/* xT G - u (x) r for x sparse rows (the batch's terms, as for textsae_csr_mm) and G given by S entries per batch row
 * (g_indices, g_values: B x S, the latents each document kept and their gradients):
 *
 *   out[t, :] = u[t] * r  +  sum over entries e of term t of values[e] * G[row(e), :]
 *
 * The sparse-input encoder's weight gradient. Each output row (one term, n_cols floats) is written once, from the
 * rank-one term, and the entry products are added into it while it is in cache: nnz(x) * S additions, where a dense G
 * costs nnz(x) * n_cols multiply-adds. Threads split the output rows. */
typedef struct {
  const int64_t *g_indices;
  const float *values, *g_values, *rank_one_rows, *rank_one_columns; /* u (n_rows), r (n_cols), or NULL */
  const float *base; /* (n_rows x n_cols) added to every row, or NULL */
  Grouping groups;
  int64_t per_row, n_cols;
} Factors;

/* Checks G's indices and groups x's entries by term; on success free_grouping(&f->groups) must follow. */
static int prepare_factors(Factors *f, const int64_t *offsets, const int64_t *indices, int64_t batch, int64_t n_rows) {
  for (int64_t i = 0; i < batch * f->per_row; i++)
    if (f->g_indices[i] < 0 || f->g_indices[i] >= f->n_cols) return TEXTSAE_EINDEX;
  return group_entries(offsets, indices, batch, n_rows, &f->groups);
}

/* o = row t of (base + u (x) r + xT G): the one gradient row both kernels below form. */
static inline void gradient_row(float *restrict o, int64_t t, const Factors *f) {
  const int64_t n = f->n_cols, s_per = f->per_row;
  const float u = f->rank_one_rows ? f->rank_one_rows[t] : 0.0f;
  const float *r = f->rank_one_columns;
  if (f->base && r)
    for (int64_t c = 0; c < n; c++) o[c] = f->base[t * n + c] + u * r[c];
  else if (f->base)
    memcpy(o, f->base + t * n, (size_t)n * sizeof(float));
  else if (r)
    for (int64_t c = 0; c < n; c++) o[c] = u * r[c];
  else
    memset(o, 0, (size_t)n * sizeof(float));
  const Grouping *g = &f->groups;
  for (int64_t q = g->start[t]; q < g->start[t + 1]; q++) {
    const int64_t e = g->entry[q], b = g->row[e];
    const float x = f->values[e];
    const int64_t *restrict cols = f->g_indices + b * s_per;
    const float *restrict gv = f->g_values + b * s_per;
    for (int64_t s = 0; s < s_per; s++) o[cols[s]] += x * gv[s];
  }
}

typedef struct {
  const Factors *factors;
  float *out;
  int64_t first_row, end_row;
} GradJob;

static void *gradient_rows(void *arg) {
  const GradJob *job = arg;
  for (int64_t t = job->first_row; t < job->end_row; t++)
    gradient_row(job->out + t * job->factors->n_cols, t, job->factors);
  return NULL;
}

int textsae_csr_t_sparse_mm(const int64_t *offsets, const int64_t *indices, const float *values, int64_t batch,
                            int64_t n_rows, const int64_t *g_indices, const float *g_values, int64_t per_row,
                            int64_t n_cols, const float *rank_one_rows, const float *rank_one_columns, float *out,
                            int threads) {
  Factors factors = {.g_indices = g_indices, .values = values, .g_values = g_values, .rank_one_rows = rank_one_rows,
                     .rank_one_columns = rank_one_columns, .per_row = per_row, .n_cols = n_cols};
  int status = prepare_factors(&factors, offsets, indices, batch, n_rows);
  if (status) return status;
  GradJob jobs[MAX_THREADS];
  const int64_t per = rows_per_thread(n_rows, &threads);
  int n = 0;
  for (int t = 0; t < threads && (int64_t)t * per < n_rows; t++, n++)
    jobs[n] = (GradJob){.factors = &factors, .out = out, .first_row = (int64_t)t * per,
                        .end_row = min64(n_rows, (int64_t)(t + 1) * per)};
  run_jobs(gradient_rows, jobs, sizeof(jobs[0]), n);
  free_grouping(&factors.groups);
  return 0;
}

/* xT G - u (x) r for dense x (B x d) and G given by S entries per batch row, as for textsae_csr_t_sparse_mm:
 *
 *   out[:, j] = u * r[j]  +  sum over the entries e that kept column j of g_values[e] * x[row(e), :]
 *
 * out (d x n_cols) row-major: the dense-input encoder's weight gradient in W_enc's layout. The entries are grouped by
 * column (a counting sort), each entry's batch row and value laid out once in that order. One PANEL of x's columns at
 * a time is copied into a contiguous (B x PANEL) scratch that stays in L2 (256 KB at batch 1,024); TILE columns of G
 * at a time are summed from it in registers into a (TILE x PANEL) tile, which is written into out transposed, a cache
 * line per input row. torch forms Gᵀ x and copies it transposed, reading and writing the weight-sized result twice;
 * summing whole rows of x from L3 instead of panels from L2 took 1.4 against 1.0 ms at d 384, 4,096 columns, batch
 * 1,024 (3.5 against 1.9 at d 768; 2 threads, AMD EPYC, an ad-hoc loop). Each column's sum runs in entry order in
 * one thread: the same inputs give the same bits for any thread count. Threads split the columns; each copies every
 * panel. */
#define TILE 16
typedef struct {
  const float *x, *u, *r;
  const Grouping *groups;
  const int64_t *entry_row; /* batch row * PANEL of each entry, in grouping order */
  const float *entry_value; /* g_values of each entry, in grouping order */
  float *out, *tile, *x_panel; /* tile: (TILE x PANEL); x_panel: (batch x PANEL) */
  int64_t batch, d, n_cols, first_col, end_col;
} TransposedJob;

#ifdef __AVX__
/* out[i .. i+8, j .. j+8] = the transpose of the 8 x 8 block at `tile` (rows d apart), plus u[i'] * r[j .. j+8]. */
static inline void write_transposed_8x8(const TransposedJob *job, int64_t i, int64_t j, const float *tile, int64_t d) {
  __m256 r0 = _mm256_loadu_ps(tile), r1 = _mm256_loadu_ps(tile + d), r2 = _mm256_loadu_ps(tile + 2 * d),
         r3 = _mm256_loadu_ps(tile + 3 * d), r4 = _mm256_loadu_ps(tile + 4 * d), r5 = _mm256_loadu_ps(tile + 5 * d),
         r6 = _mm256_loadu_ps(tile + 6 * d), r7 = _mm256_loadu_ps(tile + 7 * d);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
               t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
               t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
               s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
               s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
               s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  __m256 rows[8] = {_mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20),
                    _mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
                    _mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31),
                    _mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31)};
  const __m256 r = job->u ? _mm256_loadu_ps(job->r + j) : _mm256_setzero_ps();
  for (int q = 0; q < 8; q++) {
    const __m256 rank_one = _mm256_mul_ps(_mm256_set1_ps(job->u ? job->u[i + q] : 0.0f), r);
    _mm256_storeu_ps(job->out + (i + q) * job->n_cols + j, _mm256_add_ps(rows[q], rank_one));
  }
}
#endif

static void *transposed_panels(void *arg) {
  const TransposedJob *job = arg;
  const Grouping *g = job->groups;
  const int64_t d = job->d, n_cols = job->n_cols;
  float *restrict xp = job->x_panel;
  float *restrict tile = job->tile; /* TILE x PANEL */
  for (int64_t first = 0; first < d; first += PANEL) {
    const int64_t width = min64(PANEL, d - first);
    for (int64_t b = 0; b < job->batch; b++) {
      if (b + PREFETCH_ROWS < job->batch) prefetch(job->x + (b + PREFETCH_ROWS) * d + first, width);
      memcpy(xp + b * PANEL, job->x + b * d + first, (size_t)width * sizeof(float));
      if (width < PANEL) memset(xp + b * PANEL + width, 0, (size_t)(PANEL - width) * sizeof(float));
    }
    for (int64_t j0 = job->first_col; j0 < job->end_col; j0 += TILE) {
      const int64_t cols = min64(TILE, job->end_col - j0);
      for (int64_t jj = 0; jj < cols; jj++) {
        vec sums[PANEL / LANES] = {{0}};
        for (int64_t q = g->start[j0 + jj]; q < g->start[j0 + jj + 1]; q++) {
          const vec *xb = (const vec *)(xp + job->entry_row[q]);
          const float v = job->entry_value[q];
          for (int i = 0; i < PANEL / LANES; i++) sums[i] += v * xb[i];
        }
        for (int i = 0; i < PANEL / LANES; i++) ((vec *)(tile + jj * PANEL))[i] = sums[i];
      }
      int64_t i = 0;
#ifdef __AVX__
      if (cols == TILE)
        for (; i + 8 <= width; i += 8)
          for (int64_t jj = 0; jj < TILE; jj += 8)
            write_transposed_8x8(job, first + i, j0 + jj, tile + jj * PANEL + i, PANEL);
#endif
      for (; i < width; i++) {
        float *restrict o = job->out + (first + i) * n_cols + j0;
        const float ui = job->u ? job->u[first + i] : 0.0f;
        for (int64_t jj = 0; jj < cols; jj++) o[jj] = tile[jj * PANEL + i] + (job->u ? ui * job->r[j0 + jj] : 0.0f);
      }
    }
  }
  return NULL;
}

int textsae_dense_t_sparse_mm(const float *x, int64_t batch, int64_t d, const int64_t *g_indices,
                              const float *g_values, int64_t per_row, int64_t n_cols, const float *rank_one_rows,
                              const float *rank_one_columns, float *out, int threads) {
  for (int64_t i = 0; i < batch * per_row; i++)
    if (g_indices[i] < 0 || g_indices[i] >= n_cols) return TEXTSAE_EINDEX;
  int64_t *offsets = scratch_alloc(((size_t)batch + 1) * sizeof(int64_t));
  if (!offsets) return TEXTSAE_ENOMEM;
  for (int64_t b = 0; b <= batch; b++) offsets[b] = b * per_row;
  Grouping groups;
  int status = group_entries(offsets, g_indices, batch, n_cols, &groups);
  scratch_free(offsets);
  if (status) return status;
  if (threads < 1) threads = 1;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  int64_t per = (n_cols + threads - 1) / threads;
  per = (per + TILE - 1) / TILE * TILE;
  TransposedJob jobs[MAX_THREADS];
  int64_t *entry_row;
  float *entry_value;
  status = panel_entries(&groups, g_values, batch * per_row, &entry_row, &entry_value);
  int n = 0;
  for (int t = 0; t < threads && (int64_t)t * per < n_cols; t++, n++) {
    jobs[n] = (TransposedJob){.x = x, .u = rank_one_rows, .r = rank_one_columns,
                              .groups = &groups, .out = out, .d = d, .n_cols = n_cols, .first_col = (int64_t)t * per,
                              .end_col = min64(n_cols, (int64_t)(t + 1) * per), .batch = batch,
                              .entry_row = entry_row, .entry_value = entry_value};
    jobs[n].tile = scratch_alloc((size_t)TILE * PANEL * sizeof(float));
    jobs[n].x_panel = scratch_alloc((size_t)batch * PANEL * sizeof(float));
    if (!jobs[n].tile || !jobs[n].x_panel) status = TEXTSAE_ENOMEM;
  }
  if (!status) run_jobs(transposed_panels, jobs, sizeof(jobs[0]), n);
  for (int t = 0; t < n; t++) {
    scratch_free(jobs[t].tile);
    scratch_free(jobs[t].x_panel);
  }
  scratch_free(entry_row);
  scratch_free(entry_value);
  free_grouping(&groups);
  return status;
}

/* One Adam step of the sparse-input encoder's weight (n_rows terms x n_cols latents) whose gradient is formed one row
 * at a time and never stored:
 *
 *   g[t, :] = base[t, :] + u[t] * r + sum over entries e of term t of values[e] * G[row(e), :]
 *
 * (base, the gradient's other contributions, or zero when NULL; u (x) r the centring's rank-one term, or zero when
 * NULL; G given by S entries per batch row, as for textsae_csr_t_sparse_mm), then torch.optim.Adam's update of row t
 * as in textsae_decoder_adam_step, except its first `first_column` columns (fixed latents: they, and their moments,
 * stay as they are). Each row's gradient is built in a cache-resident buffer, so the weight-sized
 * gradient is neither written nor read back. With `center` (n_rows), `center_product` receives
 * sum_t center[t] * w_new[t, :] (n_cols), the encoder's next c.W, from the rows while they are in cache. Threads split
 * the rows; their partial products are summed in thread order (the same bits for the same thread count). */
typedef struct {
  const Factors *factors;
  const float *center;
  float *weight, *exp_avg, *exp_avg_sq, *row, *product;
  int64_t first_row, end_row, first_column;
  float step_size, one_minus_beta1, beta2, one_minus_beta2, eps, bias_correction2_sqrt;
} EncoderAdamJob;

/* p += a * w over n floats: the one loop both c.W kernels use, so that they agree bit for bit. */
static inline void add_scaled_row(float *restrict p, float a, const float *restrict w, int64_t n) {
  for (int64_t c = 0; c < n; c++) p[c] += a * w[c];
}

static void *encoder_adam_rows(void *arg) {
  const EncoderAdamJob *job = arg;
  const int64_t n = job->factors->n_cols;
  const float step_size = job->step_size;
  float *restrict o = job->row;
  for (int64_t t = job->first_row; t < job->end_row; t++) {
    gradient_row(o, t, job->factors);
    float *restrict w = job->weight + t * n, *restrict m = job->exp_avg + t * n, *restrict v = job->exp_avg_sq + t * n;
    for (int64_t c = job->first_column; c < n; c++) {
      const float gc = o[c];
      m[c] += job->one_minus_beta1 * (gc - m[c]);
      v[c] = job->beta2 * v[c] + job->one_minus_beta2 * gc * gc;
      w[c] -= step_size * m[c] / (__builtin_sqrtf(v[c]) / job->bias_correction2_sqrt + job->eps);
    }
    if (job->product) add_scaled_row(job->product, job->center[t], w, n);
  }
  return NULL;
}

int textsae_encoder_adam_step(const int64_t *offsets, const int64_t *indices, const float *values, int64_t batch,
                              int64_t n_rows, const int64_t *g_indices, const float *g_values, int64_t per_row,
                              int64_t n_cols, const float *rank_one_rows, const float *rank_one_columns,
                              const float *base, float *weight, float *exp_avg, float *exp_avg_sq,
                              float step_size, float one_minus_beta1, float beta2, float one_minus_beta2, float eps,
                              float bias_correction2_sqrt, int64_t first_column, const float *center,
                              float *center_product, int threads) {
  Factors factors = {.g_indices = g_indices, .values = values, .g_values = g_values, .rank_one_rows = rank_one_rows,
                     .rank_one_columns = rank_one_columns, .base = base, .per_row = per_row, .n_cols = n_cols};
  int status = prepare_factors(&factors, offsets, indices, batch, n_rows);
  if (status) return status;
  EncoderAdamJob jobs[MAX_THREADS];
  const int64_t per = rows_per_thread(n_rows, &threads);
  int n = 0;
  for (int t = 0; t < threads && (int64_t)t * per < n_rows; t++, n++) {
    jobs[n] = (EncoderAdamJob){
        .factors = &factors, .center = center, .weight = weight, .exp_avg = exp_avg, .exp_avg_sq = exp_avg_sq,
        .first_row = (int64_t)t * per, .end_row = min64(n_rows, (int64_t)(t + 1) * per),
        .first_column = first_column < 0 ? 0 : first_column, .step_size = step_size,
        .one_minus_beta1 = one_minus_beta1, .beta2 = beta2, .one_minus_beta2 = one_minus_beta2, .eps = eps,
        .bias_correction2_sqrt = bias_correction2_sqrt};
    jobs[n].row = scratch_alloc((size_t)n_cols * sizeof(float));
    jobs[n].product = center_product ? scratch_alloc((size_t)n_cols * sizeof(float)) : NULL;
    if (!jobs[n].row || (center_product && !jobs[n].product)) status = TEXTSAE_ENOMEM;
  }
  if (!status) {
    run_jobs(encoder_adam_rows, jobs, sizeof(jobs[0]), n);
    if (center_product) {
      memset(center_product, 0, (size_t)n_cols * sizeof(float));
      for (int t = 0; t < n; t++) add_scaled_row(center_product, 1.0f, jobs[t].product, n_cols);
    }
  }
  for (int t = 0; t < n; t++) {
    scratch_free(jobs[t].row);
    scratch_free(jobs[t].product);
  }
  free_grouping(&factors.groups);
  return status;
}

/* out = sum_t center[t] * weight[t, :] (n_cols): the encoder's c.W, summed as textsae_encoder_adam_step sums it (the
 * same rows per thread, the same loop, partials added in thread order), so the two agree bit for bit. */
typedef struct {
  const float *center, *weight;
  float *product;
  int64_t n_cols, first_row, end_row;
} ProductJob;

static void *product_rows(void *arg) {
  const ProductJob *job = arg;
  for (int64_t t = job->first_row; t < job->end_row; t++)
    add_scaled_row(job->product, job->center[t], job->weight + t * job->n_cols, job->n_cols);
  return NULL;
}

int textsae_center_product(const float *center, const float *weight, int64_t n_rows, int64_t n_cols, float *out,
                           int threads) {
  ProductJob jobs[MAX_THREADS];
  const int64_t per = rows_per_thread(n_rows, &threads);
  int n = 0, status = 0;
  for (int t = 0; t < threads && (int64_t)t * per < n_rows; t++, n++) {
    jobs[n] = (ProductJob){.center = center, .weight = weight, .n_cols = n_cols, .first_row = (int64_t)t * per,
                           .end_row = min64(n_rows, (int64_t)(t + 1) * per)};
    jobs[n].product = scratch_alloc((size_t)n_cols * sizeof(float));
    if (!jobs[n].product) status = TEXTSAE_ENOMEM;
  }
  if (!status) {
    run_jobs(product_rows, jobs, sizeof(jobs[0]), n);
    memset(out, 0, (size_t)n_cols * sizeof(float));
    for (int t = 0; t < n; t++) add_scaled_row(out, 1.0f, jobs[t].product, n_cols);
  }
  for (int t = 0; t < n; t++) scratch_free(jobs[t].product);
  return status;
}
