/* The rateless IBLT encoder's inner loop, compiled: riblt_numpy.FastEncoder's rounds, one id at a time.
 *
 * Why C: at a million ids a session maps each id to about 2 ln(m) of the first m symbols, some
 * fifteen million (id, symbol) pairs for m = 1,400. numpy spends about 90 ns on each (a dozen array
 * passes a round, ufunc.at scatters); this loop spends a few, and it releases the GIL while it runs.
 *
 * The index step is the reference's float formula evaluated in the same order on IEEE doubles
 * (riblt._next_index): ceil((i + 1.5) * 2**32 / sqrt(state) - (i + 1.5)), 1 if that is 0. With no
 * -ffast-math, sqrt and the conversions are correctly rounded, so the indexes, hence the symbols,
 * are bit-identical to the pure and numpy encoders' (tests/ledgersync compare all three).
 *
 * Buffers only (no numpy C API): the module builds with nothing but Python's headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define ID_WORDS 4
#define LANES (ID_WORDS + 1)
#define MULTIPLIER 0xDA942042E4DD58B5ULL
#define TWO32 4294967296.0
#define LAST_INDEX 2147483647LL
#define IN_FLIGHT 8

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        return -1;
    }
    if (view->len % itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes is not a whole number of %zd-byte items", name,
                     view->len, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(accumulate_doc,
"accumulate(ids, picked, checks, seeds, nxt, start, acc, counts) -> None\n\n"
"XOR every id mapped to symbols [start, start + n) into acc (n x 5 uint64: the id's four words as\n"
"they lie in memory, then its checksum) and count it in counts (n int64), advancing each id's PRNG\n"
"state (seeds, uint64) and next index (nxt, int32, capped at 2**31 - 1) as it goes. ids holds\n"
"32-byte ids; picked (int32 or int64 positions into ids) selects and orders them, or is None.\n"
"checks, seeds and nxt are indexed like the selection. n is taken from counts.");

static PyObject *accumulate(PyObject *self, PyObject *args) {
    PyObject *ids_o, *picked_o, *checks_o, *seeds_o, *next_o, *acc_o, *counts_o;
    long long start;
    if (!PyArg_ParseTuple(args, "OOOOOLOO", &ids_o, &picked_o, &checks_o, &seeds_o, &next_o, &start, &acc_o,
                          &counts_o)) {
        return NULL;
    }
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "start must be >= 0");
        return NULL;
    }
    Py_buffer ids, picked, checks, seeds, nxt, acc, counts;
    int have_picked = picked_o != Py_None;
    if (get_buffer(ids_o, &ids, 0, 32, "ids") < 0) return NULL;
    if (have_picked && PyObject_GetBuffer(picked_o, &picked, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&ids);
        return NULL;
    }
    int wide = 0;
    Py_ssize_t n_ids = ids.len / 32;
    if (have_picked) {
        if (picked.itemsize != 4 && picked.itemsize != 8) {
            PyErr_SetString(PyExc_ValueError, "picked: positions must be int32 or int64");
            goto fail_picked;
        }
        wide = picked.itemsize == 8;
        n_ids = picked.len / picked.itemsize;
    }
    if (get_buffer(checks_o, &checks, 0, 8, "checks") < 0) goto fail_picked;
    if (get_buffer(seeds_o, &seeds, 1, 8, "seeds") < 0) goto fail_checks;
    if (get_buffer(next_o, &nxt, 1, 4, "nxt") < 0) goto fail_seeds;
    if (get_buffer(acc_o, &acc, 1, 8 * LANES, "acc") < 0) goto fail_next;
    if (get_buffer(counts_o, &counts, 1, 8, "counts") < 0) goto fail_acc;

    Py_ssize_t n = counts.len / 8;
    if (acc.len / (8 * LANES) != n) {
        PyErr_Format(PyExc_ValueError, "acc holds %zd symbols, counts %zd", acc.len / (8 * LANES), n);
        goto fail_all;
    }
    if (checks.len / 8 != n_ids || seeds.len / 8 != n_ids || nxt.len / 4 != n_ids) {
        PyErr_Format(PyExc_ValueError, "checks, seeds and nxt must hold %zd items each", n_ids);
        goto fail_all;
    }
    Py_ssize_t n_base = ids.len / 32;
    if (have_picked) {
        /* Checked before the loop: a bad position must not read outside ids. */
        for (Py_ssize_t p = 0; p < n_ids; p++) {
            long long at = wide ? ((const int64_t *)picked.buf)[p] : ((const int32_t *)picked.buf)[p];
            if (at < 0 || at >= n_base) {
                PyErr_Format(PyExc_IndexError, "picked[%zd] = %lld is outside the %zd ids", p, at, n_base);
                goto fail_all;
            }
        }
    }

    const uint64_t *id_words = (const uint64_t *)ids.buf;
    const uint64_t *check = (const uint64_t *)checks.buf;
    uint64_t *seed = (uint64_t *)seeds.buf;
    int32_t *next = (int32_t *)nxt.buf;
    uint64_t *cells = (uint64_t *)acc.buf;
    int64_t *count = (int64_t *)counts.buf;
    const long long end = start + (long long)n;

    Py_BEGIN_ALLOW_THREADS
    /* Each id's indexes form one dependency chain (a multiply, a sqrt, a division, a ceil); IN_FLIGHT ids
     * advance side by side so that the processor overlaps their latencies. */
    Py_ssize_t lane_id[IN_FLIGHT];
    long long lane_index[IN_FLIGHT];
    uint64_t lane_state[IN_FLIGHT];
    int active = 0;
    Py_ssize_t p = 0;
    for (int k = 0; k < IN_FLIGHT; k++) lane_id[k] = -1;
    for (;;) {
        /* Refill the empty lanes with the next ids that map below end. */
        for (int k = 0; k < IN_FLIGHT; k++) {
            if (lane_id[k] >= 0) continue;
            while (p < n_ids && next[p] >= end) p++;
            if (p == n_ids) break;
            lane_id[k] = p;
            lane_index[k] = next[p];
            lane_state[k] = seed[p];
            active++;
            p++;
        }
        if (!active) break;
        for (int k = 0; k < IN_FLIGHT; k++) {
            Py_ssize_t q = lane_id[k];
            if (q < 0) continue;
            long long index = lane_index[k];
            Py_ssize_t at = q;
            if (have_picked) at = wide ? (Py_ssize_t)((const int64_t *)picked.buf)[q] : ((const int32_t *)picked.buf)[q];
            const uint64_t *w = id_words + (size_t)at * ID_WORDS;
            uint64_t *cell = cells + (size_t)(index - start) * LANES;
            cell[0] ^= w[0];
            cell[1] ^= w[1];
            cell[2] ^= w[2];
            cell[3] ^= w[3];
            cell[4] ^= check[q];
            count[index - start] += 1;
            uint64_t state = lane_state[k] * MULTIPLIER;
            double base = (double)index + 1.5;
            long long gap = (long long)ceil(base * TWO32 / sqrt((double)state) - base);
            index += gap ? gap : 1;
            if (index > LAST_INDEX) index = LAST_INDEX;
            lane_state[k] = state;
            lane_index[k] = index;
            if (index >= end) {
                seed[q] = state;
                next[q] = (int32_t)index;
                lane_id[k] = -1;
                active--;
            }
        }
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&counts);
    PyBuffer_Release(&acc);
    PyBuffer_Release(&nxt);
    PyBuffer_Release(&seeds);
    PyBuffer_Release(&checks);
    if (have_picked) PyBuffer_Release(&picked);
    PyBuffer_Release(&ids);
    Py_RETURN_NONE;

fail_all:
    PyBuffer_Release(&counts);
fail_acc:
    PyBuffer_Release(&acc);
fail_next:
    PyBuffer_Release(&nxt);
fail_seeds:
    PyBuffer_Release(&seeds);
fail_checks:
    PyBuffer_Release(&checks);
fail_picked:
    if (have_picked) PyBuffer_Release(&picked);
    PyBuffer_Release(&ids);
    return NULL;
}

static PyMethodDef methods[] = {
    {"accumulate", accumulate, METH_VARARGS, accumulate_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_riblt_kernel", "The rateless IBLT encoder's inner loop (see riblt_numpy).", -1, methods,
};

PyMODINIT_FUNC PyInit__riblt_kernel(void) { return PyModule_Create(&module); }
