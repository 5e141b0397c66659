/* The rateless IBLT encoder, compiled: riblt_numpy.FastEncoder's symbols, one id at a time.
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
#define BLOCK 1024 /* ids walked together: their state, about 33 KB, stays in the L1 cache */

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

#define MIX1 0xBF58476D1CE4E5B9ULL
#define MIX2 0x94D049BB133111EBULL
#define KEY_CHECK 0x9E3779B97F4A7C15ULL
#define KEY_SEED 0xD1B54A32D192ED03ULL

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= MIX1;
    x ^= x >> 27;
    x *= MIX2;
    return x ^ (x >> 31);
}

/* The id's words as riblt reads them (struct ">4Q"): big-endian numbers. */
static inline uint64_t big_endian(uint64_t word) {
#if PY_LITTLE_ENDIAN
    return __builtin_bswap64(word);
#else
    return word;
#endif
}

/* riblt._keyed_digest's chain over the id's four words under the salt's two, before the last mix. */
static inline uint64_t keyed_hash(const uint64_t *id, uint64_t k0, uint64_t k1) {
    uint64_t h = mix64(k0 ^ big_endian(id[0]));
    h = mix64(h ^ big_endian(id[1]));
    h = mix64(h ^ big_endian(id[2]) ^ k1);
    return mix64(h ^ big_endian(id[3]));
}

/* (double)x for a uint64. The compiler's conversion branches on the top bit, which the PRNG's state
 * has set half the time: a mispredicted branch every other step. Both halves convert exactly and their
 * sum is rounded once, as the direct conversion is: the same double, without the branch. */
static inline double u64_to_double(uint64_t x) {
    return (double)(uint32_t)(x >> 32) * TWO32 + (double)(uint32_t)x;
}

/* (long long)ceil(x). x86-64's baseline has no instruction for ceil (SSE4.1's roundsd is not in it),
 * so ceil is a call into libm at every step, which also spills the lanes' registers. Truncation is
 * exact below 2**63, and adding one where it cut off a positive fraction is ceil; anything outside
 * (never a gap, but NaN or a huge one must come out as before) still goes to libm. */
static inline long long ceil_to_int(double x) {
    if (x > -9.0e18 && x < 9.0e18) {
        long long t = (long long)x;
        return t + ((double)t < x);
    }
    return (long long)ceil(x);
}

/* riblt._next_index: the index after index, advancing the PRNG state. */
static inline long long next_index(long long index, uint64_t *state) {
    *state *= MULTIPLIER;
    double base = (double)index + 1.5;
    long long gap = ceil_to_int(base * TWO32 / sqrt(u64_to_double(*state)) - base);
    return index + (gap ? gap : 1);
}

PyDoc_STRVAR(encode_doc,
"encode(ids, picked, k0, k1, start, acc, counts) -> None\n\n"
"Symbols [start, start + n) of the set, from nothing: each id is hashed under the salt's two words\n"
"(k0, k1: riblt._keyed_digest) and walked from index 0, and XORed into acc (n x 5 uint64: its four\n"
"words as they lie in memory, then its checksum's big-endian bytes) and counted in counts (n int64)\n"
"where its index falls in the range. No per-id state is kept between calls: a later batch walks the\n"
"ids again from 0, which costs about what the first batch did, and a million ids need no 20 MB of\n"
"checksums, PRNG states and next indexes. ids holds 32-byte ids; picked selects them: int32 or\n"
"int64 positions into ids, a mask of one byte an id (nonzero: in the set), or None (all).");

static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *ids_o, *picked_o, *acc_o, *counts_o;
    unsigned long long k0, k1;
    long long start;
    if (!PyArg_ParseTuple(args, "OOKKLOO", &ids_o, &picked_o, &k0, &k1, &start, &acc_o, &counts_o)) {
        return NULL;
    }
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "start must be >= 0");
        return NULL;
    }
    Py_buffer ids, picked, acc, counts;
    int have_picked = picked_o != Py_None;
    if (get_buffer(ids_o, &ids, 0, 32, "ids") < 0) return NULL;
    if (have_picked && PyObject_GetBuffer(picked_o, &picked, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&ids);
        return NULL;
    }
    int wide = 0, masked = 0;
    Py_ssize_t n_base = ids.len / 32, n_ids = n_base;
    if (have_picked) {
        if (picked.itemsize == 1) {
            /* A mask: the set's ids in the order of ids, which XOR does not care about. */
            masked = 1;
            if (picked.len != n_base) {
                PyErr_Format(PyExc_ValueError, "picked: a mask of %zd bytes for %zd ids", picked.len, n_base);
                goto fail_picked;
            }
        } else if (picked.itemsize != 4 && picked.itemsize != 8) {
            PyErr_SetString(PyExc_ValueError, "picked: positions must be int32 or int64, or a one-byte mask");
            goto fail_picked;
        } else {
            wide = picked.itemsize == 8;
            n_ids = picked.len / picked.itemsize;
        }
    }
    if (get_buffer(acc_o, &acc, 1, 8 * LANES, "acc") < 0) goto fail_picked;
    if (get_buffer(counts_o, &counts, 1, 8, "counts") < 0) goto fail_acc;
    Py_ssize_t n = counts.len / 8;
    if (acc.len / (8 * LANES) != n) {
        PyErr_Format(PyExc_ValueError, "acc holds %zd symbols, counts %zd", acc.len / (8 * LANES), n);
        goto fail_all;
    }
    if (have_picked && !masked) {
        for (Py_ssize_t p = 0; p < n_ids; p++) {
            long long at = wide ? ((const int64_t *)picked.buf)[p] : ((const int32_t *)picked.buf)[p];
            if (at < 0 || at >= n_base) {
                PyErr_Format(PyExc_IndexError, "picked[%zd] = %lld is outside the %zd ids", p, at, n_base);
                goto fail_all;
            }
        }
    }

    const uint64_t *id_words = (const uint64_t *)ids.buf;
    uint64_t *cells = (uint64_t *)acc.buf;
    int64_t *count = (int64_t *)counts.buf;
    const long long end = start + (long long)n;
    const uint64_t key_check = (uint64_t)k0 ^ KEY_CHECK, key_seed = (uint64_t)k1 ^ KEY_SEED;
    const uint64_t *blk_words[BLOCK];
    uint64_t blk_check[BLOCK], blk_state[BLOCK];
    long long blk_index[BLOCK];
    uint16_t walking[BLOCK];

    Py_BEGIN_ALLOW_THREADS
    /* A block of ids at a time, in rounds: each round moves every id still short of end one index on.
     * An id's indexes are one dependency chain (a multiply, a sqrt, a division); the ids of a round are
     * independent, so the processor overlaps their chains, and no branch depends on when an id's walk
     * ends (one walking in a few lanes mispredicted about once an id): the round keeps the ids still
     * walking by writing each and counting it only if it goes on. */
    const uint8_t *in_set = masked ? (const uint8_t *)picked.buf : NULL;
    Py_ssize_t p = 0;
    while (p < n_ids) {
        Py_ssize_t nb = 0;
        while (nb < BLOCK && p < n_ids) {
            if (masked && !in_set[p]) {
                p++;
                continue;
            }
            Py_ssize_t at = p;
            if (have_picked && !masked) at = wide ? (Py_ssize_t)((const int64_t *)picked.buf)[p] : ((const int32_t *)picked.buf)[p];
            const uint64_t *w = id_words + (size_t)at * ID_WORDS;
            uint64_t h = keyed_hash(w, (uint64_t)k0, (uint64_t)k1);
            blk_words[nb] = w;
            blk_check[nb] = big_endian(mix64(h ^ key_check)); /* the checksum's wire bytes */
            blk_state[nb] = mix64(h ^ key_seed) | 1;
            blk_index[nb] = 0;
            walking[nb] = (uint16_t)nb;
            nb++;
            p++;
        }
        Py_ssize_t n_walking = nb;
        while (n_walking) {
            Py_ssize_t still = 0;
            for (Py_ssize_t t = 0; t < n_walking; t++) {
                uint16_t j = walking[t];
                long long index = blk_index[j];
                if (index >= start) {
                    const uint64_t *w = blk_words[j];
                    uint64_t *cell = cells + (size_t)(index - start) * LANES;
                    cell[0] ^= w[0];
                    cell[1] ^= w[1];
                    cell[2] ^= w[2];
                    cell[3] ^= w[3];
                    cell[4] ^= blk_check[j];
                    count[index - start] += 1;
                }
                index = next_index(index, &blk_state[j]);
                blk_index[j] = index;
                walking[still] = j;
                still += index < end;
            }
            n_walking = still;
        }
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&counts);
    PyBuffer_Release(&acc);
    if (have_picked) PyBuffer_Release(&picked);
    PyBuffer_Release(&ids);
    Py_RETURN_NONE;

fail_all:
    PyBuffer_Release(&counts);
fail_acc:
    PyBuffer_Release(&acc);
fail_picked:
    if (have_picked) PyBuffer_Release(&picked);
    PyBuffer_Release(&ids);
    return NULL;
}


/* Found ids, by their first word: open addressing, to refuse an id offered twice (forged symbols). */
typedef struct {
    Py_ssize_t *slots; /* index into the found ids + 1; 0 = empty */
    size_t mask;
} found_set;

static int found_has(const found_set *set, const uint64_t *found, const uint64_t *id) {
    size_t h = (size_t)(mix64(id[0]) & set->mask);
    while (set->slots[h]) {
        const uint64_t *other = found + (size_t)(set->slots[h] - 1) * ID_WORDS;
        if (!memcmp(other, id, 32)) return 1;
        h = (h + 1) & set->mask;
    }
    return 0;
}

static void found_add(found_set *set, const uint64_t *id, Py_ssize_t index) {
    size_t h = (size_t)(mix64(id[0]) & set->mask);
    while (set->slots[h]) h = (h + 1) & set->mask;
    set->slots[h] = index + 1;
}

PyDoc_STRVAR(peel_doc,
"peel(cells, counts, k0, k1, ids, signs) -> int\n\n"
"Peel the difference symbols (cells: m x 5 uint64 as encode makes them, remote XOR local; counts:\n"
"m uint8, remote minus local modulo 256), changing them in place, as riblt.Decoder does: a symbol\n"
"whose count is 1 or 255 and whose checksum is its id's keyed checksum under (k0, k1) holds one id\n"
"of the remote (1) or the local (255) set; that id is removed from every symbol it maps to below m,\n"
"and any symbol left pure is peeled in turn. An id offered twice is ignored. The ids found go to ids\n"
"(room for m, 32 bytes each) and their signs (+1 remote, -1 local) to signs (m int8). Returns how\n"
"many were found; decoding is complete when symbol 0 is empty afterwards.");

static PyObject *peel(PyObject *self, PyObject *args) {
    PyObject *cells_o, *counts_o, *ids_o, *signs_o;
    unsigned long long k0, k1;
    if (!PyArg_ParseTuple(args, "OOKKOO", &cells_o, &counts_o, &k0, &k1, &ids_o, &signs_o)) return NULL;
    Py_buffer cells, counts, ids, signs;
    if (get_buffer(cells_o, &cells, 1, 8 * LANES, "cells") < 0) return NULL;
    if (get_buffer(counts_o, &counts, 1, 1, "counts") < 0) goto fail_cells;
    if (get_buffer(ids_o, &ids, 1, 32, "ids") < 0) goto fail_counts;
    if (get_buffer(signs_o, &signs, 1, 1, "signs") < 0) goto fail_ids;
    Py_ssize_t m = counts.len;
    if (cells.len / (8 * LANES) != m || ids.len / 32 < m || signs.len < m) {
        PyErr_Format(PyExc_ValueError, "cells, ids and signs must hold the %zd symbols of counts", m);
        goto fail_all;
    }
    size_t capacity = 16;
    while (capacity < (size_t)m * 2 + 2) capacity <<= 1;
    found_set set = {PyMem_RawCalloc(capacity, sizeof(Py_ssize_t)), capacity - 1};
    size_t queue_cap = (size_t)m + 16, queued = 0;
    Py_ssize_t *queue = PyMem_RawMalloc(queue_cap * sizeof(Py_ssize_t));
    if (!set.slots || !queue) {
        PyMem_RawFree(set.slots);
        PyMem_RawFree(queue);
        PyErr_NoMemory();
        goto fail_all;
    }
    uint64_t *cell = (uint64_t *)cells.buf, *found = (uint64_t *)ids.buf;
    uint8_t *count = (uint8_t *)counts.buf;
    int8_t *sign = (int8_t *)signs.buf;
    const uint64_t key_check = (uint64_t)k0 ^ KEY_CHECK, key_seed = (uint64_t)k1 ^ KEY_SEED;
    Py_ssize_t n_found = 0;
    int failed = 0;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = m - 1; i >= 0; i--) {
        if (count[i] == 1 || count[i] == 255) queue[queued++] = i;
    }
    while (queued && !failed) {
        Py_ssize_t i = queue[--queued];
        if (count[i] != 1 && count[i] != 255) continue;
        uint64_t id[ID_WORDS];
        memcpy(id, cell + (size_t)i * LANES, 32);
        uint64_t h = keyed_hash(id, (uint64_t)k0, (uint64_t)k1);
        uint64_t check = big_endian(mix64(h ^ key_check));
        if (check != cell[(size_t)i * LANES + 4]) continue;
        if (found_has(&set, found, id)) continue; /* only forged symbols offer an id twice */
        if (n_found == m) continue;               /* more ids than symbols: forged too */
        int8_t s = count[i] == 1 ? 1 : -1;
        memcpy(found + (size_t)n_found * ID_WORDS, id, 32);
        sign[n_found] = s;
        found_add(&set, id, n_found);
        n_found++;
        uint64_t state = mix64(h ^ key_seed) | 1;
        long long j = 0;
        while (j < m) {
            uint64_t *c = cell + (size_t)j * LANES;
            c[0] ^= id[0];
            c[1] ^= id[1];
            c[2] ^= id[2];
            c[3] ^= id[3];
            c[4] ^= check;
            count[j] = (uint8_t)(count[j] - (uint8_t)s);
            if (count[j] == 1 || count[j] == 255) {
                if (queued == queue_cap) {
                    Py_ssize_t *grown = PyMem_RawRealloc(queue, queue_cap * 2 * sizeof(Py_ssize_t));
                    if (!grown) {
                        failed = 1;
                        break;
                    }
                    queue = grown;
                    queue_cap *= 2;
                }
                queue[queued++] = (Py_ssize_t)j;
            }
            j = next_index(j, &state);
        }
    }
    Py_END_ALLOW_THREADS

    PyMem_RawFree(set.slots);
    PyMem_RawFree(queue);
    PyBuffer_Release(&signs);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&counts);
    PyBuffer_Release(&cells);
    if (failed) return PyErr_NoMemory();
    return PyLong_FromSsize_t(n_found);

fail_all:
    PyBuffer_Release(&signs);
fail_ids:
    PyBuffer_Release(&ids);
fail_counts:
    PyBuffer_Release(&counts);
fail_cells:
    PyBuffer_Release(&cells);
    return NULL;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS, encode_doc},
    {"peel", peel, METH_VARARGS, peel_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_riblt_kernel", "The rateless IBLT encoder's inner loop (see riblt_numpy).", -1, methods,
};

PyMODINIT_FUNC PyInit__riblt_kernel(void) { return PyModule_Create(&module); }
