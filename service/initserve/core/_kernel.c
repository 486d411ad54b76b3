/*
 * initserve.core._kernel — the hot loop of sampled initializers, in C.
 *
 * Computes exactly what the numpy reference in distributions.py / special.py /
 * stream.py computes, operation for operation, in IEEE double precision:
 * Philox4x64-10 words (Salmon et al., SC'11), then the unit transforms and
 * Wichura's AS 241 normal quantile with the atanh-series logarithm.
 *
 * Bit-identity across CPUs rests on: only + - * / sqrt, comparisons and frexp
 * (all exact or correctly rounded); no libm transcendental; and no FMA
 * contraction (-ffp-contract=off, set in pyproject.toml). Vectorised code
 * performs the same IEEE operations, so SIMD level does not change results.
 * The GIL is released while filling.
 *
 * Speed: the polynomial transforms are latency-bound chains; they are written
 * lane-interleaved (see LANES) and compiled with -fno-tree-ter so that GCC
 * keeps that interleaved order instead of re-forming one chain per vector
 * (which changes no operation, only the instruction order).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>


/* ---- Philox4x64-10 ------------------------------------------------------------ */

static inline void mulhilo(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
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

static inline void philox4x64_10(const uint64_t ctr_in[4], const round_keys *rk, uint64_t out[4]) {
    uint64_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    for (int r = 0; r < 10; r++) {
        uint64_t hi0, lo0, hi1, lo1;
        mulhilo(0xD2E7470EE14C6C93ULL, c0, &hi0, &lo0);
        mulhilo(0xCA5A826395121157ULL, c2, &hi1, &lo1);
        c0 = hi1 ^ c1 ^ rk->k0[r];
        c1 = lo1;
        c2 = hi0 ^ c3 ^ rk->k1[r];
        c3 = lo0;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Words W[substream, start .. start+count) (counter = i/4 + substream * 2^192):
 * a partial first block, whole blocks written straight into w, a partial last block. */
static void fill_words(uint64_t *w, const round_keys *rk, uint64_t start, Py_ssize_t count, uint64_t substream) {
    uint64_t ctr[4] = {start / 4, 0, 0, substream}, buf[4];
    unsigned lane = (unsigned)(start % 4);
    Py_ssize_t i = 0;
    if (lane && count > 0) {
        philox4x64_10(ctr, rk, buf);
        for (; lane < 4 && i < count; lane++) w[i++] = buf[lane];
        ctr[0]++;
    }
    for (; i + 4 <= count; i += 4, ctr[0]++) philox4x64_10(ctr, rk, w + i);
    if (i < count) {
        philox4x64_10(ctr, rk, buf);
        for (lane = 0; i < count; lane++) w[i++] = buf[lane];
    }
}

/* ---- unit transforms ------------------------------------------------------------- */

static inline double one_plus(uint64_t w) {  /* 1 + (w >> 12) * 2^-52, exactly */
    uint64_t bits = (w >> 12) | 0x3FF0000000000000ULL;
    double x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static inline double open_unit(uint64_t w) { double p = one_plus(w); p -= 1.0; p += 0x1p-53; return p; }

static inline double clip(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

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

/* The transforms below work on LANES values at a time and evaluate each
 * formula step by step across the lanes: LANES independent dependency chains
 * interleave (a Horner chain is ~40 cycles of latency), and each lane loop
 * vectorises. Every lane still sees exactly the reference's operations. */
#define LANES 16
#define FOR_LANES(l) for (int l = 0; l < LANES; l++)

/* acc = (((c[0]·x + c[1])·x + c[2])·x + ...) + c[n−1], as special.py: _horner. */
static inline void horner(const double *c, int n, const double *x, double *acc) {
    FOR_LANES(l) acc[l] = c[0];
    for (int k = 1; k < n; k++) FOR_LANES(l) { acc[l] = acc[l] * x[l]; acc[l] = acc[l] + c[k]; }
}

/* log of positive finite doubles, deterministic (special.py: log):
 * x = m·2^e with m in [1/2, 1) (frexp, on the bits: subnormals are first
 * scaled by 2^54, exactly), m doubled (e − 1) if m < sqrt(1/2), f = m − 1,
 * s = f/(f + 2), log x = e·ln2 + (s + s)·Σ s^2k/(2k + 1) (k = 0..10, Horner). */
static inline void log_lanes(const double *x, double *out) {
    double e[LANES], s[LANES], s2[LANES], series[LANES];
    FOR_LANES(l) {
        int sub = x[l] < 0x1p-1022;
        double y = sub ? x[l] * 0x1p54 : x[l];
        uint64_t bits, exponent_bits;
        memcpy(&bits, &y, sizeof bits);
        exponent_bits = (bits >> 52) | 0x4330000000000000ULL;  /* the double 2^52 + biased exponent */
        bits = (bits & 0x000FFFFFFFFFFFFFULL) | 0x3FE0000000000000ULL;
        double m, ex;
        memcpy(&m, &bits, sizeof m);
        memcpy(&ex, &exponent_bits, sizeof ex);
        ex -= 0x1p52 + 1022.0;
        ex -= sub ? 54.0 : 0.0;
        int small = m < SQRT_HALF;
        m = small ? m * 2.0 : m;
        e[l] = ex - (small ? 1.0 : 0.0);
        double f = m - 1.0;
        s[l] = f / (f + 2.0);
        s2[l] = s[l] * s[l];
    }
    horner(LOG_SERIES, 11, s2, series);
    FOR_LANES(l) {
        double a = e[l] * LN2, b = s[l] + s[l];
        b = b * series[l];
        out[l] = a + b;
    }
}

/* Φ⁻¹(p[i]) into z[i] for n <= TILE values (special.py: ndtri, op for op).
 * 1. Central formula q·A(r)/B(r), r = 0.180625 − q², q = p − 1/2, for every i.
 * 2. Indices of the tails |q| > 0.425 (15% of uniform input), compacted
 *    branch-free, and t = min(p, 1 − p) gathered (= p if q < 0 else 1 − p:
 *    1 − p is exact for p >= 1/2 and rounds to >= 1/2 for p < 1/2).
 * 3. r = sqrt(−log t), then C(r − 1.6)/D(r − 1.6), or E(r − 5)/F(r − 5) where
 *    r > 5 (t < e⁻²⁵: rare, so evaluated only for chunks that contain one).
 * 4. Scatter, negated (sign bit flipped) where q < 0.
 * p and z hold TILE doubles; p[n ..] is padded up to a multiple of LANES. */
#define TILE 512
#define ROUND_UP(n) (((n) + LANES - 1) / LANES * LANES)
static void ndtri(double *p, Py_ssize_t n, double *z) {
    double t[TILE], value[TILE];
    int32_t index[TILE];
    Py_ssize_t tails = 0;
    for (Py_ssize_t i = n; i < ROUND_UP(n); i++) p[i] = 0.5;
    for (Py_ssize_t i0 = 0; i0 < n; i0 += LANES) {
        double q[LANES], r[LANES], num[LANES], den[LANES];
        FOR_LANES(l) { q[l] = p[i0 + l] - 0.5; r[l] = q[l] * q[l]; r[l] = 0.180625 - r[l]; }
        horner(A, 8, r, num);
        horner(B, 8, r, den);
        FOR_LANES(l) { num[l] = num[l] * q[l]; z[i0 + l] = num[l] / den[l]; }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        index[tails] = (int32_t)i;
        tails += fabs(p[i] - 0.5) > 0.425;
    }
    for (Py_ssize_t j = 0; j < tails; j++) {
        double pj = p[index[j]], mirror = 1.0 - pj;
        t[j] = pj < mirror ? pj : mirror;
    }
    for (Py_ssize_t j = tails; j < ROUND_UP(tails); j++) t[j] = 0.5;
    for (Py_ssize_t j0 = 0; j0 < tails; j0 += LANES) {  /* t becomes r; padding lanes hold t = 1/2 */
        double lg[LANES], rn[LANES], num[LANES], den[LANES];
        int far = 0;
        log_lanes(t + j0, lg);
        FOR_LANES(l) { double r = sqrt(-lg[l]); t[j0 + l] = r; rn[l] = r - 1.6; }
        horner(C, 8, rn, num);
        horner(D, 8, rn, den);
        FOR_LANES(l) value[j0 + l] = num[l] / den[l];
        FOR_LANES(l) far |= t[j0 + l] > 5.0;
        if (far) {
            FOR_LANES(l) rn[l] = t[j0 + l] - 5.0;
            horner(E, 8, rn, num);
            horner(F, 8, rn, den);
            FOR_LANES(l) value[j0 + l] = t[j0 + l] > 5.0 ? num[l] / den[l] : value[j0 + l];
        }
    }
    for (Py_ssize_t j = 0; j < tails; j++) {
        Py_ssize_t i = index[j];
        double v = value[j];
        uint64_t bits, sign = (uint64_t)(p[i] < 0.5) << 63;  /* −v for q < 0: flip the sign bit */
        memcpy(&bits, &v, sizeof bits);
        bits ^= sign;
        memcpy(&z[i], &bits, sizeof bits);
    }
}

/* ---- entry points ------------------------------------------------------------------ */

enum { UNIFORM = 0, NORMAL = 1, TRUNC_NORMAL = 2 };

/* Transform the m <= TILE words w into values o (params as in distributions.py). */
static void transform(int kind, const double *p, const uint64_t *w, Py_ssize_t m, double *x, double *z, double *o) {
    if (kind == UNIFORM) {          /* p = low, high - low */
        for (Py_ssize_t i = 0; i < m; i++) { double u = one_plus(w[i]); u -= 1.0; u *= p[1]; u += p[0]; o[i] = u; }
    } else if (kind == NORMAL) {     /* p = mean, std */
        for (Py_ssize_t i = 0; i < m; i++) x[i] = open_unit(w[i]);
        ndtri(x, m, z);
        for (Py_ssize_t i = 0; i < m; i++) { double v = z[i]; v *= p[1]; v += p[0]; o[i] = v; }
    } else {  /* p = cdf_a, width, clip_lo, clip_hi, a, b, mirrored, mean, std, low, high */
        for (Py_ssize_t i = 0; i < m; i++) {
            double u = open_unit(w[i]);
            u *= p[1]; u += p[0];
            x[i] = clip(u, p[2], p[3]);
        }
        ndtri(x, m, z);
        for (Py_ssize_t i = 0; i < m; i++) {
            double v = clip(z[i], p[4], p[5]);
            if (p[6] != 0.0) v = -v;
            v *= p[8]; v += p[7];
            o[i] = clip(v, p[9], p[10]);
        }
    }
}

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
 * starts[r] .. starts[r] + length, one after the other (a box of a tensor in another
 * layout is many short runs). Words of consecutive runs are gathered tile by tile,
 * so short runs cost no more per element than one long run (bar a Philox block each). */
static PyObject *kernel_fill_runs(PyObject *self, PyObject *args) {
    Py_buffer view, starts_view;
    int kind;
    unsigned long long key0, key1;
    Py_ssize_t length;
    PyObject *params_obj;
    double p[12];
    if (!PyArg_ParseTuple(args, "w*iKKy*nO", &view, &kind, &key0, &key1, &starts_view, &length, &params_obj))
        return NULL;
    Py_ssize_t runs = starts_view.len / 8;
    if (parse_params(params_obj, p) < 0 || length < 0 || view.len != runs * length * (Py_ssize_t)sizeof(double)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "out must hold len(starts) * length doubles");
        PyBuffer_Release(&view);
        PyBuffer_Release(&starts_view);
        return NULL;
    }
    const uint64_t *starts = (const uint64_t *)starts_view.buf;
    double *out = (double *)view.buf;
    Py_BEGIN_ALLOW_THREADS
    round_keys rk = key_schedule(key0, key1);
    uint64_t w[TILE];
    double x[TILE], z[TILE];
    Py_ssize_t run = 0, done = 0, written = 0;  /* next word: run `run`, element `done` of it */
    while (run < runs && length > 0) {
        Py_ssize_t m = 0;
        while (m < TILE && run < runs) {
            Py_ssize_t take = length - done < TILE - m ? length - done : TILE - m;
            fill_words(w + m, &rk, starts[run] + (uint64_t)done, take, 0);
            m += take;
            done += take;
            if (done == length) { run++; done = 0; }
        }
        transform(kind, p, w, m, x, z, out + written);
        written += m;
    }
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
     "fill_runs(out_f64, kind, key0, key1, starts_u64, length, params): values of equal-length runs"},
    {"words", kernel_words, METH_VARARGS, "words(out_u64, key0, key1, start, substream): Philox words"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "initserve's compiled sampling kernel", -1,
                                    methods};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&module); }
