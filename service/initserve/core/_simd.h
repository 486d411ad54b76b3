/*
 * _simd.h — one C source, two builds of its hot loops: baseline x86-64 and AVX2.
 *
 * A hot function's body is written once as `static inline ALWAYS_INLINE`, and
 * two thin wrappers compile it twice: plainly (the baseline, SSE2 on x86-64)
 * and under TARGET_AVX2. AVX2 does not imply FMA, and the modules are compiled
 * with -ffp-contract=off anyway, so both builds perform the same IEEE
 * operations in the same order; only the vector width differs, which changes
 * no result as long as every vectorised loop is elementwise across lanes (no
 * reduction is ever split over lanes). Tests run every build this CPU supports
 * and compare the bytes.
 *
 * The build in use is chosen when the module is imported: the environment
 * variable INITSERVE_SIMD ("baseline" or "avx2") if set, else the best build
 * the CPU supports. From Python: simd() names it, simd_builds() lists the
 * builds this CPU supports, set_simd(name) switches.
 *
 * Usage in a module: write `static enum simd_build simd_current;`-free code —
 * this header defines the state — call simd_init() in PyInit (it returns -1
 * with ValueError set for a bad INITSERVE_SIMD), add SIMD_METHODS to the method
 * table, and dispatch on `simd_current == SIMD_AVX2` (only where
 * SIMD_HAVE_AVX2 is defined).
 */
#ifndef INITSERVE_SIMD_H
#define INITSERVE_SIMD_H

#include <Python.h>
#include <stdlib.h>
#include <string.h>

#define ALWAYS_INLINE __attribute__((always_inline))

#if defined(__x86_64__) || defined(__i386__)
#define SIMD_HAVE_AVX2 1
#define TARGET_AVX2 __attribute__((target("avx2")))
#endif

enum simd_build { SIMD_BASELINE, SIMD_AVX2, SIMD_BUILDS };
static const char *const SIMD_NAMES[SIMD_BUILDS] = {"baseline", "avx2"};
static enum simd_build simd_current = SIMD_BASELINE;

static int simd_supported(enum simd_build build) {
    if (build == SIMD_BASELINE) return 1;
#ifdef SIMD_HAVE_AVX2
    if (build == SIMD_AVX2) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0;
    }
#endif
    return 0;
}

/* Select the build called `name`; -1 with ValueError set if unknown or unsupported here. */
static int simd_select(const char *name) {
    for (int b = 0; b < SIMD_BUILDS; b++) {
        if (strcmp(name, SIMD_NAMES[b]) == 0) {
            if (!simd_supported((enum simd_build)b)) {
                PyErr_Format(PyExc_ValueError, "INITSERVE_SIMD=%s: this CPU does not support %s", name, name);
                return -1;
            }
            simd_current = (enum simd_build)b;
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError, "INITSERVE_SIMD=%s: unknown build (known: baseline, avx2)", name);
    return -1;
}

/* The build named by INITSERVE_SIMD, else the best one supported. */
static int simd_init(void) {
    const char *name = getenv("INITSERVE_SIMD");
    if (name && *name) return simd_select(name);
    simd_current = simd_supported(SIMD_AVX2) ? SIMD_AVX2 : SIMD_BASELINE;
    return 0;
}

static PyObject *simd_py_get(PyObject *self, PyObject *unused) { return PyUnicode_FromString(SIMD_NAMES[simd_current]); }

static PyObject *simd_py_builds(PyObject *self, PyObject *unused) {
    PyObject *list = PyList_New(0);
    for (int b = 0; list && b < SIMD_BUILDS; b++) {
        if (!simd_supported((enum simd_build)b)) continue;
        PyObject *name = PyUnicode_FromString(SIMD_NAMES[b]);
        if (!name || PyList_Append(list, name) < 0) { Py_XDECREF(name); Py_DECREF(list); return NULL; }
        Py_DECREF(name);
    }
    return list;
}

static PyObject *simd_py_set(PyObject *self, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name) || simd_select(name) < 0) return NULL;
    Py_RETURN_NONE;
}

#define SIMD_METHODS                                                                                    \
    {"simd", simd_py_get, METH_NOARGS, "simd() -> name of the build in use ('baseline' or 'avx2')"},    \
    {"simd_builds", simd_py_builds, METH_NOARGS, "simd_builds() -> the builds this CPU supports"},     \
    {"set_simd", simd_py_set, METH_VARARGS, "set_simd(name): use that build (ValueError if unsupported)"}

#endif
