/*
 * initserve.core._linalg — the matrix products of the orthogonal construction, in C.
 *
 * Every product C = A·B computes each output element by one sequential sum over
 * the inner index, in index order, every operation an IEEE double rounded on its
 * own (-ffp-contract=off, no FMA, no reassociation):
 *
 *     acc = 0;  for t = 0 … k−1:  acc = acc + A[i,t] × B[t,j]
 *     then  C[i,j] = acc        (matmul, subtract = False)
 *       or  C[i,j] = C[i,j] − acc (subtract = True)
 *
 * so the bits do not depend on the CPU, the vector width or the thread count.
 * Speed comes from what leaves each element's sum alone (Goto & van de Geijn,
 * "Anatomy of high-performance matrix multiplication", ACM TOMS 34(3), 2008):
 *
 * - a register tile of outputs (6 × 4 in SSE2 registers, 4 × 8 in AVX2's) whose
 *   vector lanes are different output columns: a lane only ever adds its own
 *   products, so the baseline and AVX2 builds (_simd.h) perform the same operations;
 * - packing of A into groups of tile rows and of B into slivers of tile columns;
 * - blocking of the inner index by KC, the partial sums carried through C
 *   between blocks (a sum continued later is the same sum);
 * - threads (pthreads, GIL released) that split the output columns, never a sum.
 *
 * On top of the product: `reflect_block`, one block of the backward accumulation of
 * Householder reflectors in compact WY form (Schreiber & Van Loan, SIAM J. Sci.
 * Stat. Comput. 10(1), 1989): S = Vᵀ V, the triangular T, Q −= V (T (Vᵀ Q)),
 * skipping blocks of Q known to be zero (their terms are ±0, which change no bit
 * of a sum that starts at +0); and `squares_below_diagonal` (the column sums of
 * squares the reflectors are built from).
 * docs/determinism.md § 7 states every order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "_simd.h"

#define KC 256      /* inner-index block of the products */
#define CW 256      /* columns of Q one step of apply_block works on */
#define MAX_MR 6    /* largest tile_rows */
#define MAX_NR 8    /* largest tile_cols */
#define MAX_THREADS 64

typedef Py_ssize_t ssize;
typedef double v2d __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));

static inline ssize round_up(ssize x, ssize to) { return (x + to - 1) / to * to; }
static inline ssize min_ssize(ssize a, ssize b) { return a < b ? a : b; }

/* Room for `count` doubles on a 64-byte boundary, so vector loads of packed data never straddle a cache line. */
static double *alloc_doubles(ssize count) {
    return aligned_alloc(64, (size_t)round_up((count + 1) * (ssize)sizeof(double), 64));
}


/* ---- matrices ------------------------------------------------------------------ */

/* A strided matrix view; strides in elements. */
typedef struct { double *data; ssize rows, cols, rs, cs; } matrix;

/* A (rows × k) packed in groups of mr rows: element (i, t) at data[(⌊i/mr⌋·ld + t)·mr + i mod mr], rows past the
 * end 0 (ld = k, but for a window of the inner index, see inner_window). */
typedef struct { double *data; ssize rows, k, ld; int mr; } packed;

static int pack(packed *out, const matrix *a, int mr) {
    ssize groups = round_up(a->rows, mr) / mr;
    *out = (packed){alloc_doubles(groups * mr * a->cols), a->rows, a->cols, a->cols, mr};
    if (!out->data) return -1;
    for (ssize g = 0; g < groups; g++)
        for (ssize t = 0; t < a->cols; t++)
            for (ssize i = 0; i < mr; i++) {
                ssize row = g * mr + i;
                out->data[(g * a->cols + t) * mr + i] = row < a->rows ? a->data[row * a->rs + t * a->cs] : 0.0;
            }
    return 0;
}

/* Columns [t0, t1) of a packed A. */
static packed inner_window(const packed *a, ssize t0, ssize t1) {
    return (packed){a->data + t0 * a->mr, a->rows, t1 - t0, a->ld, a->mr};
}

static matrix transposed(matrix m) {
    return (matrix){m.data, m.cols, m.rows, m.cs, m.rs};
}

static matrix columns(const matrix *m, ssize c0, ssize c1) {
    return (matrix){m->data + c0 * m->cs, m->rows, c1 - c0, m->rs, m->cs};
}


/* ---- register tiles ------------------------------------------------------------ */

#define SPLAT_v2d(x) {x, x}
#define SPLAT_v4d(x) {x, x, x, x}
static inline ALWAYS_INLINE v2d load_v2d(const double *p) { v2d v; memcpy(&v, p, sizeof v); return v; }
static inline ALWAYS_INLINE v4d load_v4d(const double *p) { v4d v; memcpy(&v, p, sizeof v); return v; }
static inline ALWAYS_INLINE void store_v2d(double *p, v2d v) { memcpy(p, &v, sizeof v); }
static inline ALWAYS_INLINE void store_v4d(double *p, v4d v) { memcpy(p, &v, sizeof v); }

/* TILE(name, vec, lanes, mr, nv): one mr × (lanes·nv) block of outputs in registers, nv vectors per row:
 * acc = (carry ? c : 0); acc = acc + a[t][i] × b[t][j] for t < kc; then c = acc, or c = c − acc.
 * Each lane is one output column; a[t][i] is splat over the lanes; no sum crosses lanes. */
#define TILE(NAME, VEC, LANES, TMR, TNV)                                                                           \
    static inline ALWAYS_INLINE void NAME(ssize kc, const double *restrict pa, const double *restrict pb,           \
                                          double *restrict c, ssize ldc, int carry, int subtract) {               \
        VEC acc[TMR][TNV];                                                                                         \
        for (int i = 0; i < TMR; i++)                                                                              \
            for (int j = 0; j < TNV; j++) acc[i][j] = carry ? load_##VEC(c + i * ldc + LANES * j) : (VEC){0.0};      \
        for (ssize t = 0; t < kc; t++, pa += TMR, pb += LANES * TNV) {                                             \
            VEC b[TNV];                                                                                            \
            for (int j = 0; j < TNV; j++) b[j] = load_##VEC(pb + LANES * j);                                       \
            for (int i = 0; i < TMR; i++) {                                                                        \
                VEC a = SPLAT_##VEC(pa[i]);                                                                        \
                for (int j = 0; j < TNV; j++) acc[i][j] = acc[i][j] + a * b[j];                                    \
            }                                                                                                      \
        }                                                                                                          \
        for (int i = 0; i < TMR; i++)                                                                              \
            for (int j = 0; j < TNV; j++) {                                                                        \
                double *out = c + i * ldc + LANES * j;                                                             \
                store_##VEC(out, subtract ? load_##VEC(out) - acc[i][j] : acc[i][j]);                              \
            }                                                                                                      \
    }

TILE(tile_v2, v2d, 2, 6, 2)  /* 6 × 4 outputs in 12 of SSE2's 16 registers */
TILE(tile_v4, v4d, 4, 4, 2)  /* 4 × 8 outputs in 8 of AVX2's 16 registers (wider tiles spill; measured no faster) */

enum tile_kind { TILE_V2, TILE_V4 };

static inline ALWAYS_INLINE int tile_rows(enum tile_kind kind) { return kind == TILE_V4 ? 4 : 6; }
static inline ALWAYS_INLINE int tile_cols(enum tile_kind kind) { return kind == TILE_V4 ? 8 : 4; }

static inline ALWAYS_INLINE void tile(enum tile_kind kind, ssize kc, const double *restrict pa,
                                      const double *restrict pb, double *restrict c, ssize ldc, int carry,
                                      int subtract) {
    if (kind == TILE_V4)
        tile_v4(kc, pa, pb, c, ldc, carry, subtract);
    else
        tile_v2(kc, pa, pb, c, ldc, carry, subtract);
}


/* ---- the product --------------------------------------------------------------- */

/* B rows k0 … k0+kc−1, all q columns, as nr-column slivers: sliver s, row t, lane l at buf[(s·kc + t)·nr + l]. */
static inline ALWAYS_INLINE void pack_b(const matrix *b, ssize k0, ssize kc, int nr, double *restrict buf) {
    for (ssize s = 0; s * nr < b->cols; s++) {
        ssize width = min_ssize(nr, b->cols - s * nr);
        for (ssize t = 0; t < kc; t++) {
            const double *src = b->data + (k0 + t) * b->rs + s * nr * b->cs;
            double *dst = buf + (s * kc + t) * nr;
            for (ssize l = 0; l < nr; l++) dst[l] = l < width ? src[l * b->cs] : 0.0;
        }
    }
}

/* C (p × q) = A B or C −= A B, A packed by tile_rows(kind) (p × k), B k × q (q ≤ CW), buf of
 * product_scratch(k, subtract) doubles.
 * Subtracting products are not blocked over the inner index (their partial sums cannot live in C). */
static inline ALWAYS_INLINE void product_body(enum tile_kind kind, const packed *a, const matrix *b, matrix *c,
                                              int subtract, double *buf) {
    const int mr = tile_rows(kind), nr = tile_cols(kind);
    ssize p = a->rows, k = a->k, q = b->cols;
    if (k == 0) {
        for (ssize i = 0; i < p && !subtract; i++) memset(c->data + i * c->rs, 0, (size_t)q * sizeof(double));
        return;
    }
    ssize step = subtract ? k : KC;
    for (ssize k0 = 0; k0 < k; k0 += step) {
        ssize kc = min_ssize(step, k - k0);
        pack_b(b, k0, kc, nr, buf);
        for (ssize g = 0; g * mr < p; g++) {
            const double *pa = a->data + (g * a->ld + k0) * mr;
            ssize rows = min_ssize(mr, p - g * mr);
            for (ssize s = 0; s * nr < q; s++) {
                ssize cols = min_ssize(nr, q - s * nr);
                double *ct = c->data + g * mr * c->rs + s * nr;
                const double *pb = buf + s * kc * nr;
                if (rows == mr && cols == nr) {
                    tile(kind, kc, pa, pb, ct, c->rs, k0 > 0, subtract);
                    continue;
                }
                /* an edge: a whole tile in a buffer, of which the part that exists is copied in and out */
                double edge[MAX_MR * MAX_NR] = {0.0};
                for (ssize i = 0; i < rows; i++) memcpy(edge + i * nr, ct + i * c->rs, (size_t)cols * sizeof(double));
                tile(kind, kc, pa, pb, edge, nr, k0 > 0, subtract);
                for (ssize i = 0; i < rows; i++) memcpy(ct + i * c->rs, edge + i * nr, (size_t)cols * sizeof(double));
            }
        }
    }
}

static void product_baseline(const packed *a, const matrix *b, matrix *c, int subtract, double *buf) {
    product_body(TILE_V2, a, b, c, subtract, buf);
}

#ifdef SIMD_HAVE_AVX2
TARGET_AVX2 static void product_avx2(const packed *a, const matrix *b, matrix *c, int subtract, double *buf) {
    product_body(TILE_V4, a, b, c, subtract, buf);
}
#endif

/* The product of one SIMD build, and the tile rows its packed A must have. */
typedef struct {
    void (*run)(const packed *a, const matrix *b, matrix *c, int subtract, double *buf);
    int mr;
} kernel;

/* The build in use (read once per call, so a concurrent set_simd cannot mix packings). */
static kernel current_kernel(void) {
#ifdef SIMD_HAVE_AVX2
    if (simd_current == SIMD_AVX2) return (kernel){product_avx2, tile_rows(TILE_V4)};
#endif
    return (kernel){product_baseline, tile_rows(TILE_V2)};
}



/* ---- threads over output columns ----------------------------------------------- */

/* work(ctx, c0, c1, scratch) computes output columns [c0, c1) with a thread's own scratch space. */
typedef void (*column_work)(void *ctx, ssize c0, ssize c1, double *scratch);

typedef struct {
    column_work work;
    void *ctx;
    ssize q, scratch_size;
    int threads;
    _Atomic ssize next;  /* first column no thread has taken yet */
} column_job;

/* Take columns [*c0, *c1): half a fair share of what is left, in whole MAX_NR-slivers, at most CW (guided
 * scheduling: big chunks first, small ones to even out the end). 0 when none are left. */
static int take(column_job *job, ssize *c0, ssize *c1) {
    ssize start = atomic_load(&job->next), size;
    do {
        if (start >= job->q) return 0;
        size = round_up((job->q - start + 2 * job->threads - 1) / (2 * job->threads), MAX_NR);
        size = size < CW ? size : CW;
    } while (!atomic_compare_exchange_weak(&job->next, &start, start + size));
    *c0 = start;
    *c1 = min_ssize(start + size, job->q);
    return 1;
}

static void *take_chunks(void *arg) {
    column_job *job = arg;
    double *scratch = alloc_doubles(job->scratch_size);
    if (!scratch) return NULL;  /* the other threads take this one's share */
    for (ssize c0, c1; take(job, &c0, &c1);) job->work(job->ctx, c0, c1, scratch);
    free(scratch);
    return NULL;
}

/* Columns [0, q) in chunks, each of `threads` threads taking the next free one: which thread computes which
 * columns changes no bit (no sum crosses columns), and a thread slowed down by others on a shared machine takes
 * fewer. -1 if out of memory. */
static int parallel_columns(int threads, ssize q, ssize scratch_size, column_work work, void *ctx) {
    ssize slivers = round_up(q, MAX_NR) / MAX_NR;
    if (threads > slivers) threads = (int)slivers;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads < 1) threads = 1;
    column_job job = {work, ctx, q, scratch_size, threads, 0};
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int i = 1; i < threads; i++) started[i] = pthread_create(&ids[i], NULL, take_chunks, &job) == 0;
    take_chunks(&job);
    for (int i = 1; i < threads; i++)
        if (started[i]) pthread_join(ids[i], NULL);
    return atomic_load(&job.next) >= q ? 0 : -1;
}


/* ---- one block of reflectors --------------------------------------------------- */

/* Scratch of product_body: the packed B block of ≤ CW columns. */
static ssize product_scratch(ssize k, int subtract) {
    return round_up(CW, MAX_NR) * (subtract ? k : min_ssize(k, KC));
}

/* C = A B or C −= A B over columns [c0, c1); with `upper`, only C's rows < c1 (what S's upper triangle needs). */
typedef struct { kernel kernel; const packed *a; const matrix *b; matrix *c; int subtract, upper; } product_job;

static void product_columns(void *ctx, ssize c0, ssize c1, double *scratch) {
    product_job *job = ctx;
    packed a = *job->a;
    if (job->upper) a.rows = min_ssize(a.rows, c1);
    matrix b = columns(job->b, c0, c1), c = columns(job->c, c0, c1);
    job->kernel.run(&a, &b, &c, job->subtract, scratch);
}

/* T (b × b, zero below the diagonal) of H_0 ⋯ H_{b−1} = I − V T Vᵀ from the upper triangle of S = Vᵀ V:
 * T[a, a] = τ_a; T[i, a] = −(τ_a × Σ_{l<a} T[i, l] × S[l, a]) for i < a, the sum in order l (acc = 0). */
static void triangular_factor(ssize b, const double *s, const matrix *tau, double *t) {
    for (ssize a = 0; a < b; a++) {
        double tau_a = tau->data[a * tau->cs];
        for (ssize col = 0; col < b; col++) t[a * b + col] = 0.0;
        t[a * b + a] = tau_a;
        for (ssize i = 0; i < a; i++) {
            double w = 0.0;
            for (ssize l = 0; l < a; l++) w = w + t[i * b + l] * s[l * b + a];
            t[i * b + a] = -(tau_a * w);
        }
    }
}

/* Q (M × N) −= V (T (Vᵀ Q)) for V M × b, Vᵀ and T and V packed. Q[:b, b:] and Q[b:, :b] are zero (the block's
 * own columns are still E's, the later ones were only written below row b), so Vᵀ Q sums over rows [b, M) for
 * columns ≥ b and over rows [0, b) for the others: the skipped terms are ±0, which change no bit of a sum that
 * starts at +0. Scratch: W and Y (b × CW each), then product_body's. */
typedef struct { kernel kernel; const packed *vt, *t, *v; matrix *q; } block_job;

static void block_part(const block_job *job, ssize x0, ssize x1, double *scratch) {
    ssize b = job->t->rows, width = x1 - x0;
    ssize r0 = x0 >= b ? b : 0, r1 = x0 >= b ? job->q->rows : b;
    matrix qx = columns(job->q, x0, x1), qr = {qx.data + r0 * qx.rs, r1 - r0, width, qx.rs, qx.cs};
    matrix w = {scratch, b, width, width, 1}, y = {scratch + b * CW, b, width, width, 1};
    double *buf = scratch + 2 * b * CW;
    packed vt = inner_window(job->vt, r0, r1);
    job->kernel.run(&vt, &qr, &w, 0, buf);      /* W = Vᵀ Q[:, x0:x1], over the rows that may be nonzero */
    job->kernel.run(job->t, &w, &y, 0, buf);    /* Y = T W */
    job->kernel.run(job->v, &y, &qx, 1, buf);   /* Q[:, x0:x1] −= V Y */
}

static void block_columns(void *ctx, ssize c0, ssize c1, double *scratch) {
    block_job *job = ctx;
    ssize b = job->t->rows, mid = c0 < b && b < c1 ? b : c0;
    if (mid > c0) block_part(job, c0, mid, scratch);
    block_part(job, mid, c1, scratch);
}

/* One block of the accumulation (docs/determinism.md § 7): S = Vᵀ V, T, Q −= V (T (Vᵀ Q)). -1 if out of memory. */
static int reflect(matrix *q, const matrix *v, const matrix *tau, int threads) {
    ssize b = v->cols;
    kernel chosen = current_kernel();
    matrix vt = transposed(*v), t = {alloc_doubles(b * b), b, b, b, 1};
    double *s = alloc_doubles(b * b);
    packed pvt = {0}, pv = {0}, pt = {0};
    int status = -1;
    if (s && t.data && pack(&pvt, &vt, chosen.mr) == 0 && pack(&pv, v, chosen.mr) == 0) {
        matrix sm = {s, b, b, b, 1};
        product_job job = {chosen, &pvt, v, &sm, 0, 1};
        status = parallel_columns(threads, b, product_scratch(v->rows, 0), product_columns, &job);
    }
    if (status == 0) {
        triangular_factor(b, s, tau, t.data);
        status = pack(&pt, &t, chosen.mr);
    }
    if (status == 0) {
        block_job job = {chosen, &pvt, &pt, &pv, q};
        status = parallel_columns(threads, q->cols, 2 * b * CW + product_scratch(KC, 0), block_columns, &job);
    }
    free(s);
    free(t.data);
    free(pvt.data);
    free(pv.data);
    free(pt.data);
    return status;
}


/* ---- Python interface ---------------------------------------------------------- */

/* A 2-D float64 buffer as a matrix; -1 with an exception set otherwise. */
static int get_matrix(PyObject *obj, Py_buffer *view, matrix *m, const char *name, int writable) {
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    if (view->ndim != 2 || view->itemsize != 8 || !view->format || strcmp(view->format, "d") != 0 ||
        view->strides[0] % 8 || view->strides[1] % 8 || (writable && view->shape[1] > 1 && view->strides[1] != 8)) {
        PyErr_Format(PyExc_ValueError, "%s must be a 2-D float64 array%s", name,
                     writable ? " with contiguous rows" : "");
        PyBuffer_Release(view);
        return -1;
    }
    *m = (matrix){view->buf, view->shape[0], view->shape[1], view->strides[0] / 8, view->strides[1] / 8};
    if (writable) m->cs = 1;
    return 0;
}

/* A 1-D float64 buffer as a 1 × n matrix (writable ones contiguous); -1 with an exception set otherwise. */
static int get_vector(PyObject *obj, Py_buffer *view, matrix *m, const char *name, int writable) {
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    if (view->ndim != 1 || view->itemsize != 8 || !view->format || strcmp(view->format, "d") != 0 ||
        view->strides[0] % 8 || (writable && view->shape[0] > 1 && view->strides[0] != 8)) {
        PyErr_Format(PyExc_ValueError, "%s must be a 1-D float64 array%s", name, writable ? ", contiguous" : "");
        PyBuffer_Release(view);
        return -1;
    }
    *m = (matrix){view->buf, 1, view->shape[0], 0, view->strides[0] / 8};
    return 0;
}

static void release(Py_buffer *views, int count) {
    for (int i = 0; i < count; i++) PyBuffer_Release(&views[i]);
}

/* matmul(a, b, out, subtract=False, threads=1) */
static PyObject *linalg_matmul(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"a", "b", "out", "subtract", "threads", NULL};
    PyObject *objs[3];
    int subtract = 0, threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|pi", keywords, &objs[0], &objs[1], &objs[2], &subtract,
                                     &threads))
        return NULL;
    Py_buffer views[3];
    matrix a, b, c;
    if (get_matrix(objs[0], &views[0], &a, "a", 0) < 0) return NULL;
    if (get_matrix(objs[1], &views[1], &b, "b", 0) < 0) { release(views, 1); return NULL; }
    if (get_matrix(objs[2], &views[2], &c, "out", 1) < 0) { release(views, 2); return NULL; }
    if (a.cols != b.rows || c.rows != a.rows || c.cols != b.cols) {
        release(views, 3);
        return PyErr_Format(PyExc_ValueError, "shapes (%zd, %zd) @ (%zd, %zd) -> (%zd, %zd) do not match", a.rows,
                            a.cols, b.rows, b.cols, c.rows, c.cols);
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    kernel chosen = current_kernel();
    packed pa;
    status = pack(&pa, &a, chosen.mr);
    if (status == 0) {
        product_job job = {chosen, &pa, &b, &c, subtract, 0};
        status = parallel_columns(threads, c.cols, product_scratch(a.cols, subtract), product_columns, &job);
        free(pa.data);
    }
    Py_END_ALLOW_THREADS
    release(views, 3);
    if (status < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* reflect_block(q, v, tau, threads=1): Q −= V (T (Vᵀ Q)) with T of H_0 ⋯ H_{b−1} = I − V T Vᵀ, H_a = I − τ_a v_a v_aᵀ,
 * where q is Q[j:, j:] of docs § 7 (its zero blocks as there) and v the block's reflectors. */
static PyObject *linalg_reflect_block(PyObject *self, PyObject *args) {
    PyObject *objs[3];
    int threads = 1;
    if (!PyArg_ParseTuple(args, "OOO|i", &objs[0], &objs[1], &objs[2], &threads)) return NULL;
    Py_buffer views[3];
    matrix q, v, tau;
    if (get_matrix(objs[0], &views[0], &q, "q", 1) < 0) return NULL;
    if (get_matrix(objs[1], &views[1], &v, "v", 0) < 0) { release(views, 1); return NULL; }
    if (get_vector(objs[2], &views[2], &tau, "tau", 0) < 0) { release(views, 2); return NULL; }
    if (v.rows != q.rows || tau.cols != v.cols || v.cols > KC || v.cols > q.rows || v.cols > q.cols) {
        release(views, 3);
        return PyErr_Format(PyExc_ValueError, "q is M x N, v M x b, tau of length b, with b <= min(M, N, %d)", KC);
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = reflect(&q, &v, &tau, threads);
    Py_END_ALLOW_THREADS
    release(views, 3);
    if (status < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* squares_below_diagonal(g, out): out[k] = Σ_{r=k+1}^{m−1} g[r, k] × g[r, k], in order r (acc = 0), k < n. */
static PyObject *linalg_squares_below_diagonal(PyObject *self, PyObject *args) {
    PyObject *objs[2];
    if (!PyArg_ParseTuple(args, "OO", &objs[0], &objs[1])) return NULL;
    Py_buffer views[2];
    matrix g, out;
    if (get_matrix(objs[0], &views[0], &g, "g", 0) < 0) return NULL;
    if (get_vector(objs[1], &views[1], &out, "out", 1) < 0) { release(views, 1); return NULL; }
    if (out.cols != g.cols) {
        release(views, 2);
        PyErr_SetString(PyExc_ValueError, "out must have length n for g m × n");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    double *sums = out.data;
    for (ssize k = 0; k < g.cols; k++) sums[k] = 0.0;
    if (g.rs <= g.cs) {  /* columns contiguous: one column at a time */
        for (ssize k = 0; k < g.cols; k++) {
            double acc = 0.0;
            for (ssize r = k + 1; r < g.rows; r++) {
                double x = g.data[r * g.rs + k * g.cs];
                acc = acc + x * x;
            }
            sums[k] = acc;
        }
    } else {  /* rows contiguous: sweep the rows, every column's sum advancing by one term (vectorised over k) */
        for (ssize r = 1; r < g.rows; r++) {
            const double *row = g.data + r * g.rs;
            ssize width = min_ssize(r, g.cols);
            if (g.cs == 1)
                for (ssize k = 0; k < width; k++) sums[k] = sums[k] + row[k] * row[k];
            else
                for (ssize k = 0; k < width; k++) sums[k] = sums[k] + row[k * g.cs] * row[k * g.cs];
        }
    }
    Py_END_ALLOW_THREADS
    release(views, 2);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"matmul", (PyCFunction)(void (*)(void))linalg_matmul, METH_VARARGS | METH_KEYWORDS,
     "matmul(a, b, out, subtract=False, threads=1): out = a @ b or out -= a @ b, every sum in index order"},
    {"reflect_block", linalg_reflect_block, METH_VARARGS,
     "reflect_block(q, v, tau, threads=1): q -= v @ (t @ (v.T @ q)), t the block's triangular factor"},
    {"squares_below_diagonal", linalg_squares_below_diagonal, METH_VARARGS,
     "squares_below_diagonal(g, out): out[k] = sum of g[r, k]**2 over r > k, in order"},
    SIMD_METHODS,
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_linalg",
                                    "initserve's deterministic matrix products (orthogonal initialisation)", -1,
                                    methods};

PyMODINIT_FUNC PyInit__linalg(void) {
    if (simd_init() < 0) return NULL;
    return PyModule_Create(&module);
}
