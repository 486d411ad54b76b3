/*
 * initserve.core._kernel — the hot loop of sampled initializers, in C.
 *
 * Computes exactly what the numpy reference in distributions.py / special.py /
 * stream.py computes, operation for operation, in IEEE double precision:
 * Philox4x64-10 words (Salmon et al., SC'11), then the unit transforms and
 * Wichura's AS 241 normal quantile with the atanh-series logarithm. Values are
 * rounded to the output array's type by a C cast (float32: round to nearest
 * even, exactly numpy's astype) and written straight into it.
 *
 * Bit-identity across CPUs rests on: only + - * / sqrt, comparisons and frexp
 * (all exact or correctly rounded); no libm transcendental; and no FMA
 * contraction (-ffp-contract=off, set in pyproject.toml). Vectorised code
 * performs the same IEEE operations, so SIMD level does not change results:
 * the hot loop is compiled twice, for baseline x86-64 and for AVX2 (_simd.h),
 * and the tests compare the bytes of both. The GIL is released while filling.
 *
 * Speed: the polynomial transforms are latency-bound chains; they are written
 * lane-interleaved (see LANES) and compiled with -fno-tree-ter so that GCC
 * keeps that interleaved order instead of re-forming one chain per vector
 * (which changes no operation, only the instruction order). Philox is bound
 * by the integer multiplier, the quantile by the floating-point units: where
 * a run is contiguous, the words of a later lane group are computed a round
 * at a time between the polynomial steps of the current one, so both work at
 * once (see gaussian_tile).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_simd.h"


/* ---- Philox4x64-10 ------------------------------------------------------------ */

static inline ALWAYS_INLINE void mulhilo(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
    __uint128_t p = (__uint128_t)a * b;
    *hi = (uint64_t)(p >> 64);
    *lo = (uint64_t)p;
}

/* Round keys of the Philox key schedule: round r uses (k0 + r·0x9E3779B97F4A7C15,
 * k1 + r·0xBB67AE8584CAA73B) mod 2^64, computed once per call (the block loop
 * then xors them from memory). */
typedef struct { uint64_t k0[10], k1[10]; } round_keys;

static round_keys key_schedule(uint64_t k0, uint64_t k1) {
    round_keys rk;
    for (int r = 0; r < 10; r++, k0 += 0x9E3779B97F4A7C15ULL, k1 += 0xBB67AE8584CAA73BULL) {
        rk.k0[r] = k0;
        rk.k1[r] = k1;
    }
    return rk;
}

/* Round r of one block: c = (c0, c1, c2, c3) becomes its output after rounds 0 .. 9. */
static inline ALWAYS_INLINE void philox_round(uint64_t c[4], const round_keys *rk, int r) {
    uint64_t hi0, lo0, hi1, lo1;
    mulhilo(0xD2E7470EE14C6C93ULL, c[0], &hi0, &lo0);
    mulhilo(0xCA5A826395121157ULL, c[2], &hi1, &lo1);
    c[0] = hi1 ^ c[1] ^ rk->k0[r];
    c[1] = lo1;
    c[2] = hi0 ^ c[3] ^ rk->k1[r];
    c[3] = lo0;
}

/* Philox4x64-10 of the counters ctr, ctr + 1, ..., ctr + n − 1 (n <= 2; the low
 * counter word counts) into out. A block's rounds are a chain of dependent
 * multiplications: two blocks, round by round, keep the multiplier busy. */
static inline ALWAYS_INLINE void philox_blocks(const uint64_t ctr[4], int n, const round_keys *rk, uint64_t *out) {
    uint64_t c[2][4];
    for (int b = 0; b < n; b++) {
        memcpy(c[b], ctr, sizeof c[b]);
        c[b][0] += (uint64_t)b;
    }
    for (int r = 0; r < 10; r++)
        for (int b = 0; b < n; b++) philox_round(c[b], rk, r);
    memcpy(out, c, (size_t)n * sizeof c[0]);
}

/* Words W[substream, start .. start+count) (counter = i/4 + substream * 2^192):
 * a partial first block, whole blocks (two at a time) written straight into w, a partial last block. */
static inline ALWAYS_INLINE void fill_words(uint64_t *w, const round_keys *rk, uint64_t start, Py_ssize_t count,
                                            uint64_t substream) {
    uint64_t ctr[4] = {start / 4, 0, 0, substream}, buf[4];
    unsigned lane = (unsigned)(start % 4);
    Py_ssize_t i = 0;
    if (lane && count > 0) {
        philox_blocks(ctr, 1, rk, buf);
        for (; lane < 4 && i < count; lane++) w[i++] = buf[lane];
        ctr[0]++;
    }
    for (; i + 8 <= count; i += 8, ctr[0] += 2) philox_blocks(ctr, 2, rk, w + i);
    for (; i + 4 <= count; i += 4, ctr[0]++) philox_blocks(ctr, 1, rk, w + i);
    if (i < count) {
        philox_blocks(ctr, 1, rk, buf);
        for (lane = 0; i < count; lane++) w[i++] = buf[lane];
    }
}

/* ---- unit transforms ------------------------------------------------------------- */

static inline ALWAYS_INLINE double one_plus(uint64_t w) {  /* 1 + (w >> 12) * 2^-52, exactly */
    uint64_t bits = (w >> 12) | 0x3FF0000000000000ULL;
    double x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static inline ALWAYS_INLINE double clip(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* ---- AS 241 ---------------------------------------------------------------------- */

static const double A[8] = {2.5090809287301226727e3, 3.3430575583588128105e4, 6.7265770927008700853e4,
    4.5921953931549871457e4, 1.3731693765509461125e4, 1.9715909503065514427e3, 1.3314166789178437745e2,
    3.3871328727963666080e0};
static const double B[8] = {5.2264952788528545610e3, 2.8729085735721942674e4, 3.9307895800092710610e4,
    2.1213794301586595867e4, 5.3941960214247511077e3, 6.8718700749205790830e2, 4.2313330701600911252e1, 1.0};
static const double C[8] = {7.74545014278341407640e-4, 2.27238449892691845833e-2, 2.41780725177450611770e-1,
    1.27045825245236838258e0, 3.64784832476320460504e0, 5.76949722146069140550e0, 4.63033784615654529590e0,
    1.42343711074968357734e0};
static const double D[8] = {1.05075007164441684324e-9, 5.47593808499534494600e-4, 1.51986665636164571966e-2,
    1.48103976427480074590e-1, 6.89767334985100004550e-1, 1.67638483018380384940e0, 2.05319162663775882187e0, 1.0};
static const double E[8] = {2.01033439929228813265e-7, 2.71155556874348757815e-5, 1.24266094738807843860e-3,
    2.65321895265761230930e-2, 2.96560571828504891230e-1, 1.78482653991729133580e0, 5.46378491116411436990e0,
    6.65790464350110377720e0};
static const double F[8] = {2.04426310338993978564e-15, 1.42151175831644588870e-7, 1.84631831751005468180e-5,
    7.86869131145613259100e-4, 1.48753612908506148525e-2, 1.36929880922735805310e-1, 5.99832206555887937690e-1, 1.0};
/* 1/(2k+1), k = 10 .. 0 (correctly rounded by the compiler's constant folding). */
static const double LOG_SERIES[11] = {1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9,
    1.0 / 7, 1.0 / 5, 1.0 / 3, 1.0};
#define LN2 0.6931471805599453
#define SQRT_HALF 0.7071067811865476

/* The transforms below work on a lane group of LANES values at a time, as
 * NV vectors of 4 doubles (GCC's vector extension: one AVX2 register, or two
 * SSE2 ones in the baseline build), and evaluate each formula step by step
 * across the group: the lanes' dependency chains interleave (a Horner chain is
 * ~40 cycles of latency). Vector operations are elementwise, so every lane
 * sees exactly the reference's operations. Vectors never cross a call
 * (everything here is always_inline), so the ABI note about 32-byte vectors
 * without AVX does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef double vd __attribute__((vector_size(32)));
typedef uint64_t vu __attribute__((vector_size(32)));
#define NV 2
#define LANES (4 * NV)
#define BLOCKS (LANES / 4)  /* Philox blocks per lane group */
#define FOR_V(v) for (int v = 0; v < NV; v++)
#define FOR_L(l) for (int l = 0; l < 4; l++)

static inline ALWAYS_INLINE vd load(const double *x) { vd v; memcpy(&v, x, sizeof v); return v; }
static inline ALWAYS_INLINE void save(double *x, vd v) { memcpy(x, &v, sizeof v); }
static inline ALWAYS_INLINE vd splat(double c) { return (vd){c, c, c, c}; }
static inline ALWAYS_INLINE vd vabs(vd x) { return (vd)((vu)x & 0x7FFFFFFFFFFFFFFFULL); }

/* All-ones lanes where a < b. The sign of a − b is that of the exact difference
 * (a nonzero difference of doubles is at least 2^-1074, and x − x = +0), so
 * this is the comparison a < b; unlike GCC's vector compare, it is built from
 * operations that SSE2 has, so the baseline build keeps it in registers. */
static inline ALWAYS_INLINE vu less(vd a, vd b) { return (vu){0} - ((vu)(a - b) >> 63); }
static inline ALWAYS_INLINE vd vselect(vu mask, vd a, vd b) { return (vd)((mask & (vu)a) | (~mask & (vu)b)); }
static inline ALWAYS_INLINE vd vclip(vd x, vd lo, vd hi) { return vselect(less(x, lo), lo, vselect(less(hi, x), hi, x)); }

/* One Horner step, acc = acc·x + c, for a numerator and a denominator at once. */
static inline ALWAYS_INLINE void horner2_step(vd *a, vd *b, const vd *x, double ca, double cb) {
    FOR_V(v) { a[v] = a[v] * x[v]; b[v] = b[v] * x[v]; }
    FOR_V(v) { a[v] = a[v] + ca; b[v] = b[v] + cb; }
}

/* a = c(x), b = d(x), two polynomials of degree n − 1 (coefficients highest first), as special.py: _horner. */
static inline ALWAYS_INLINE void horner2(const double *c, const double *d, int n, const vd *x, vd *a, vd *b) {
    FOR_V(v) { a[v] = splat(c[0]); b[v] = splat(d[0]); }
    for (int k = 1; k < n; k++) horner2_step(a, b, x, c[k], d[k]);
}

/* log of positive finite doubles, deterministic (special.py: log):
 * x = m·2^e with m in [1/2, 1) (frexp, on the bits: subnormals are first
 * scaled by 2^54, exactly), m doubled (e − 1) if m < sqrt(1/2), f = m − 1,
 * s = f/(f + 2), log x = e·ln2 + (s + s)·Σ s^2k/(2k + 1) (k = 0..10, Horner). */
static inline ALWAYS_INLINE void log_lanes(const vd *x, vd *out) {
    vd e[NV], s[NV], s2[NV], series[NV];
    FOR_V(v) {
        vu sub = less(x[v], splat(0x1p-1022)), bits = (vu)vselect(sub, x[v] * 0x1p54, x[v]);
        vd ex = (vd)((bits >> 52) | 0x4330000000000000ULL);  /* the double 2^52 + biased exponent */
        vd m = (vd)((bits & 0x000FFFFFFFFFFFFFULL) | 0x3FE0000000000000ULL);
        ex = ex - (0x1p52 + 1022.0);
        ex = ex - (vd)(sub & (vu)splat(54.0));
        vu small = less(m, splat(SQRT_HALF));
        m = vselect(small, m * 2.0, m);
        e[v] = ex - (vd)(small & (vu)splat(1.0));
        vd f = m - 1.0;
        s[v] = f / (f + 2.0);
        s2[v] = s[v] * s[v];
    }
    FOR_V(v) series[v] = splat(LOG_SERIES[0]);
    for (int k = 1; k < 11; k++) FOR_V(v) { series[v] = series[v] * s2[v]; series[v] = series[v] + LOG_SERIES[k]; }
    FOR_V(v) {
        vd a = e[v] * LN2, b = s[v] + s[v];
        b = b * series[v];
        out[v] = a + b;
    }
}

/* Central formula of Φ⁻¹ for one lane group: z = q·A(r)/B(r), r = 0.180625 − q²,
 * q = p − 1/2, and tail = 1 where |q| > 0.425 (the tails' z is computed later).
 * With `next` (BLOCKS Philox counters), their ten rounds run between the
 * polynomial steps: independent integer work that fills the floating-point
 * latency, without changing a single operation of either. */
static inline ALWAYS_INLINE void central(const double *p, double *z, uint64_t *tail, uint64_t (*next)[4],
                                         const round_keys *rk) {
    vd q[NV], r[NV], num[NV], den[NV];
    FOR_V(v) {
        q[v] = load(p + 4 * v) - 0.5;
        r[v] = q[v] * q[v];
        r[v] = 0.180625 - r[v];
        num[v] = splat(A[0]);
        den[v] = splat(B[0]);
    }
    for (int k = 1; k <= 10; k++) {
        if (k < 8) horner2_step(num, den, r, A[k], B[k]);
        if (next)
            for (int b = 0; b < BLOCKS; b++) philox_round(next[b], rk, k - 1);
    }
    FOR_V(v) {
        vu flag = less(splat(0.425), vabs(q[v])) & 1;
        num[v] = num[v] * q[v];
        save(z + 4 * v, num[v] / den[v]);
        memcpy(tail + 4 * v, &flag, sizeof flag);
    }
}

/* Φ⁻¹ in the tails, |q| > 0.425, for one lane group of t = min(p, 1 − p)
 * (= p if q < 0 else 1 − p: 1 − p is exact for p >= 1/2 and rounds to >= 1/2
 * for p < 1/2): r = sqrt(−log t), then C(r − 1.6)/D(r − 1.6), or E(r − 5)/F(r − 5)
 * where r > 5 (t < e⁻²⁵: rare, so evaluated only for groups that contain one).
 * Stores |Φ⁻¹| in out. */
static inline ALWAYS_INLINE void tail_group(const double *t, double *out) {
    vd x[NV], r[NV], rn[NV], num[NV], den[NV], value[NV];
    vu far = {0};
    FOR_V(v) x[v] = load(t + 4 * v);
    log_lanes(x, x);
    FOR_V(v) {
        FOR_L(l) r[v][l] = sqrt(-x[v][l]);
        rn[v] = r[v] - 1.6;
    }
    horner2(C, D, 8, rn, num, den);
    FOR_V(v) value[v] = num[v] / den[v];
    FOR_V(v) far |= less(splat(5.0), r[v]);
    if (far[0] | far[1] | far[2] | far[3]) {
        FOR_V(v) rn[v] = r[v] - 5.0;
        horner2(E, F, 8, rn, num, den);
        FOR_V(v) value[v] = vselect(less(splat(5.0), r[v]), num[v] / den[v], value[v]);
    }
    FOR_V(v) save(out + 4 * v, value[v]);
}

/* ---- tiles ------------------------------------------------------------------------- */

enum { UNIFORM = 0, NORMAL = 1, TRUNC_NORMAL = 2 };

/* Elements per tile: the working arrays stay in L1. A tile's words may start up
 * to 3 lanes early (a contiguous run's first block) and end AHEAD + 1 lane groups
 * late. Computed words are AHEAD lane groups ahead of their use: they are stored
 * as integers and loaded as vectors, which the store buffer cannot forward, so
 * they are given time to reach the cache. */
#define TILE 512
#define AHEAD 2
#define SLACK (4 + (AHEAD + 1) * LANES)

typedef struct {
    uint64_t w[TILE + SLACK];
    double p[TILE + SLACK], z[TILE + SLACK], t[TILE + SLACK], v[TILE + SLACK];
    uint64_t tail[TILE + SLACK];
    int32_t index[TILE + SLACK];
} workspace;

/* The probability fed to Φ⁻¹: normal p = open_unit(w) = (one_plus(w) − 1) + 2^-53;
 * truncated normal p = clip(open_unit(w)·width + cdf_a, clip_lo, clip_hi) (see
 * finish for the params). They are broadcast once per tile, not once per group. */
typedef struct { vd cdf_a, width, clip_lo, clip_hi; } unit_law;

static inline ALWAYS_INLINE void unit_group(int kind, const unit_law *law, const uint64_t *w, double *p) {
    FOR_V(v) {
        vu bits;
        memcpy(&bits, w + 4 * v, sizeof bits);
        vd u = (vd)((bits >> 12) | 0x3FF0000000000000ULL);  /* one_plus */
        u = u - 1.0;
        u = u + 0x1p-53;
        if (kind == TRUNC_NORMAL) {
            u = u * law->width;
            u = u + law->cdf_a;
            u = vclip(u, law->clip_lo, law->clip_hi);
        }
        save(p + 4 * v, u);
    }
}

/* Normal or truncated normal values of words ws->w[0 .. n) into ws->z (special.py: ndtri, op for op).
 * If `block` >= 0 the words are not given: they are Philox blocks block, block + 1, ...,
 * computed here AHEAD lane groups ahead (see central); else ws->w holds them (padded to LANES).
 * 1. p, the central formula and the tail marks, for every lane group.
 * 2. Indices of the tails (15% of uniform input), compacted branch-free.
 * 3. Their t gathered, |Φ⁻¹| in groups, scattered negated (sign bit flipped) where p < 1/2. */
static inline ALWAYS_INLINE void gaussian_tile(int kind, const double *prm, workspace *ws, Py_ssize_t n,
                                               const round_keys *rk, int64_t block) {
    unit_law law = {splat(prm[0]), splat(prm[1]), splat(prm[2]), splat(prm[3])};
    if (block >= 0) fill_words(ws->w, rk, (uint64_t)block * 4, AHEAD * LANES, 0);
    for (Py_ssize_t i0 = 0; i0 < n; i0 += LANES) {
        unit_group(kind, &law, ws->w + i0, ws->p + i0);
        if (block >= 0) {
            uint64_t next[BLOCKS][4];
            for (int b = 0; b < BLOCKS; b++) {
                next[b][0] = (uint64_t)block + (uint64_t)(i0 / 4) + AHEAD * BLOCKS + b;
                next[b][1] = next[b][2] = next[b][3] = 0;
            }
            central(ws->p + i0, ws->z + i0, ws->tail + i0, next, rk);
            memcpy(ws->w + i0 + AHEAD * LANES, next, sizeof next);
        } else {
            central(ws->p + i0, ws->z + i0, ws->tail + i0, NULL, rk);
        }
    }
    Py_ssize_t tails = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        ws->index[tails] = (int32_t)i;
        tails += (Py_ssize_t)ws->tail[i];
    }
    for (Py_ssize_t j = 0; j < tails; j++) {
        double pj = ws->p[ws->index[j]], mirror = 1.0 - pj;
        ws->t[j] = pj < mirror ? pj : mirror;
    }
    for (Py_ssize_t j = tails; j < tails + LANES; j++) ws->t[j] = 0.5;  /* padding: any valid t */
    for (Py_ssize_t j0 = 0; j0 < tails; j0 += LANES) tail_group(ws->t + j0, ws->v + j0);
    for (Py_ssize_t j = 0; j < tails; j++) {
        Py_ssize_t i = ws->index[j];
        double v = ws->v[j];
        uint64_t bits, sign = (uint64_t)(ws->p[i] < 0.5) << 63;  /* −v for q < 0: flip the sign bit */
        memcpy(&bits, &v, sizeof bits);
        bits ^= sign;
        memcpy(&ws->z[i], &bits, sizeof bits);
    }
}

/* The values of the runs starts[r] .. starts[r] + length, one after the other, into out. */
typedef struct {
    void *out;
    int single, kind;
    const uint64_t *starts;
    Py_ssize_t runs, length;
    double prm[12];
    round_keys rk;
} fill_job;

/* The value of tile element i (params as in distributions.py: uniform p = low, high − low;
 * normal p = mean, std; truncated normal p = cdf_a, width, clip_lo, clip_hi, a, b, mirrored,
 * mean, std, low, high). */
static inline ALWAYS_INLINE double finish(int kind, const double *prm, const workspace *ws, Py_ssize_t i) {
    if (kind == UNIFORM) { double u = one_plus(ws->w[i]); u -= 1.0; u *= prm[1]; u += prm[0]; return u; }
    double v = ws->z[i];
    if (kind == NORMAL) { v *= prm[1]; v += prm[0]; return v; }
    v = clip(v, prm[4], prm[5]);
    if (prm[6] != 0.0) v = -v;
    v *= prm[8]; v += prm[7];
    return clip(v, prm[9], prm[10]);
}

/* Tile elements skip .. skip + n of the words ws->w (or of Philox blocks from `block`, see
 * gaussian_tile) into out[at .. at + n), rounded to float32 if the job says so (a C cast:
 * nearest-even, as numpy's astype). */
static inline ALWAYS_INLINE void tile(int kind, const fill_job *job, workspace *ws, Py_ssize_t skip, Py_ssize_t n,
                                      int64_t block, Py_ssize_t at) {
    double prm[12];  /* a local copy: stores to out cannot change it */
    memcpy(prm, job->prm, sizeof prm);
    if (kind != UNIFORM) gaussian_tile(kind, prm, ws, skip + n, &job->rk, block);
    else if (block >= 0) fill_words(ws->w, &job->rk, (uint64_t)block * 4, skip + n, 0);
    if (job->single) {
        float *o = (float *)job->out + at;
        for (Py_ssize_t i = 0; i < n; i++) o[i] = (float)finish(kind, prm, ws, skip + i);
    } else {
        double *o = (double *)job->out + at;
        for (Py_ssize_t i = 0; i < n; i++) o[i] = finish(kind, prm, ws, skip + i);
    }
}

/* Long runs go tile by tile, their words computed inside the quantile loop (one
 * contiguous counter range per tile, starting at the run's first block); short
 * runs (a box of a tensor in another layout) are gathered word by word into
 * full tiles, so they cost no more per element than one long run (bar a Philox
 * block each). */
static inline ALWAYS_INLINE void fill_kind(int kind, const fill_job *job, workspace *ws) {
    Py_ssize_t written = 0;
    if (job->length >= TILE) {
        for (Py_ssize_t r = 0; r < job->runs; r++)
            for (Py_ssize_t done = 0; done < job->length; done += TILE) {
                Py_ssize_t m = job->length - done < TILE ? job->length - done : TILE;
                uint64_t start = job->starts[r] + (uint64_t)done;
                tile(kind, job, ws, (Py_ssize_t)(start % 4), m, (int64_t)(start / 4), written);
                written += m;
            }
        return;
    }
    Py_ssize_t run = 0, done = 0;  /* next word: run `run`, element `done` of it */
    while (run < job->runs && job->length > 0) {
        Py_ssize_t m = 0;
        while (m < TILE && run < job->runs) {
            Py_ssize_t take = job->length - done < TILE - m ? job->length - done : TILE - m;
            fill_words(ws->w + m, &job->rk, job->starts[run] + (uint64_t)done, take, 0);
            m += take;
            done += take;
            if (done == job->length) { run++; done = 0; }
        }
        memset(ws->w + m, 0, LANES * sizeof *ws->w);  /* the last group's padding: any words */
        tile(kind, job, ws, 0, m, -1, written);
        written += m;
    }
}

/* Each law gets its own copy of the loops. */
static inline ALWAYS_INLINE void fill_body(const fill_job *job, workspace *ws) {
    if (job->kind == UNIFORM) fill_kind(UNIFORM, job, ws);
    else if (job->kind == NORMAL) fill_kind(NORMAL, job, ws);
    else fill_kind(TRUNC_NORMAL, job, ws);
}

static void fill_baseline(const fill_job *job, workspace *ws) { fill_body(job, ws); }
#ifdef SIMD_HAVE_AVX2
TARGET_AVX2 static void fill_avx2(const fill_job *job, workspace *ws) { fill_body(job, ws); }
#endif

/* ---- entry points ------------------------------------------------------------------ */

/* The params sequence of fill_runs as up to 12 doubles (missing ones 0). */
static int parse_params(PyObject *params_obj, double p[12]) {
    PyObject *seq = PySequence_Fast(params_obj, "params must be a sequence");
    if (!seq) return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < 12; i++) p[i] = i < count ? PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i)) : 0.0;
    Py_DECREF(seq);
    return PyErr_Occurred() ? -1 : 0;
}

/* fill_runs(out, kind, key0, key1, starts_u64, length, params): the values of the runs
 * starts[r] .. starts[r] + length, one after the other, into the contiguous float64 or
 * float32 array out. */
static PyObject *kernel_fill_runs(PyObject *self, PyObject *args) {
    PyObject *out_obj, *params_obj;
    Py_buffer view, starts_view;
    unsigned long long key0, key1;
    fill_job job;
    if (!PyArg_ParseTuple(args, "OiKKy*nO", &out_obj, &job.kind, &key0, &key1, &starts_view, &job.length,
                          &params_obj))
        return NULL;
    if (PyObject_GetBuffer(out_obj, &view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&starts_view);
        return NULL;
    }
    job.runs = starts_view.len / 8;
    job.single = strcmp(view.format, "f") == 0;
    int fits = (job.single || strcmp(view.format, "d") == 0) && job.length >= 0 &&
               view.len == job.runs * job.length * (job.single ? 4 : 8);
    if (!fits)
        PyErr_SetString(PyExc_ValueError, "out must be a contiguous float64 or float32 array of len(starts) * length");
    if (!fits || parse_params(params_obj, job.prm) < 0) {
        PyBuffer_Release(&view);
        PyBuffer_Release(&starts_view);
        return NULL;
    }
    job.out = view.buf;
    job.starts = (const uint64_t *)starts_view.buf;
    job.rk = key_schedule(key0, key1);
    Py_BEGIN_ALLOW_THREADS
    workspace ws;
#ifdef SIMD_HAVE_AVX2
    if (simd_current == SIMD_AVX2) fill_avx2(&job, &ws);
    else
#endif
        fill_baseline(&job, &ws);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyBuffer_Release(&starts_view);
    Py_RETURN_NONE;
}

/* words(out_uint64, key0, key1, start, substream) */
static PyObject *kernel_words(PyObject *self, PyObject *args) {
    Py_buffer view;
    unsigned long long key0, key1, start, substream;
    if (!PyArg_ParseTuple(args, "w*KKKK", &view, &key0, &key1, &start, &substream)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    round_keys rk = key_schedule(key0, key1);
    fill_words((uint64_t *)view.buf, &rk, start, view.len / 8, substream);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"fill_runs", kernel_fill_runs, METH_VARARGS,
     "fill_runs(out_f64_or_f32, kind, key0, key1, starts_u64, length, params): values of equal-length runs"},
    {"words", kernel_words, METH_VARARGS, "words(out_u64, key0, key1, start, substream): Philox words"},
    SIMD_METHODS,
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "initserve's compiled sampling kernel", -1,
                                    methods};

PyMODINIT_FUNC PyInit__kernel(void) {
    if (simd_init() < 0) return NULL;
    return PyModule_Create(&module);
}
