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
 * so ceil is a call into libm at every step, which also spills the registers around it. Truncation is
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

/* A block of ids being walked: each one's words, checksum, PRNG state and next index (a double: the
 * indexes that matter are below end, far under 2**53, so exact). Moved, not pointed to, as ids drop
 * out, so that a round reads it in order. */
typedef struct {
    const uint64_t *words[BLOCK];
    uint64_t check[BLOCK];
    uint64_t state[BLOCK];
    double index[BLOCK];
} block_t;

static inline void add_to_cell(uint64_t *cells, int64_t *count, long long start, long long index,
                               const uint64_t *w, uint64_t check) {
    if (index >= start) {
        uint64_t *cell = cells + (size_t)(index - start) * LANES;
        cell[0] ^= w[0];
        cell[1] ^= w[1];
        cell[2] ^= w[2];
        cell[3] ^= w[3];
        cell[4] ^= check;
        count[index - start] += 1;
    }
}

/* One id's step in a round: add it where it is, move it on, keep it at still if it has not reached
 * end. Returns the new still. */
static inline Py_ssize_t step_one(block_t *b, Py_ssize_t t, Py_ssize_t still, long long start, long long end,
                                  uint64_t *cells, int64_t *count) {
    const uint64_t *w = b->words[t];
    uint64_t check = b->check[t], state = b->state[t];
    long long index = (long long)b->index[t];
    add_to_cell(cells, count, start, index, w, check);
    index = next_index(index, &state);
    b->words[still] = w;
    b->check[still] = check;
    b->state[still] = state;
    b->index[still] = (double)index;
    return still + (index < end);
}

/* Rounds: each moves every id still short of end one index on. An id's indexes are one dependency
 * chain (a multiply, a sqrt, a division); the ids of a round are independent, so the processor
 * overlaps their chains, and no branch depends on when an id's walk ends (ids walked in a few lanes
 * each to its end mispredicted about once an id): an id is kept by writing it and counting it only
 * if it goes on. */
static void walk_block(block_t *b, Py_ssize_t n, long long start, long long end, uint64_t *cells, int64_t *count) {
    while (n) {
        Py_ssize_t still = 0;
        for (Py_ssize_t t = 0; t < n; t++) still = step_one(b, t, still, start, end, cells, count);
        n = still;
    }
}

#if defined(__GNUC__) && defined(__x86_64__)
#define HAVE_AVX2_PATH 1
#include <immintrin.h>

/* walk_block with four ids' steps at once in AVX2 (checked at import: simd_enabled). Every operation
 * is the scalar step's, on the same IEEE doubles in the same order: the 64-bit multiply from 32-bit
 * products, the uint64-to-double from its two exact halves added once, sqrt and division (correctly
 * rounded), roundpd toward +inf for ceil; no FMA (not in this target), so no contraction. The same
 * indexes, hence the same symbols, as the scalar path (tests/ledgersync compare them). The sqrt and
 * division are most of a step: four in one instruction each. */
__attribute__((target("avx2"))) static void walk_block_avx2(block_t *b, Py_ssize_t n, long long start,
                                                            long long end, uint64_t *cells, int64_t *count) {
    const __m256i mult_lo = _mm256_set1_epi64x((long long)(MULTIPLIER & 0xFFFFFFFFULL));
    const __m256i mult_hi = _mm256_set1_epi64x((long long)(MULTIPLIER >> 32));
    const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFFLL);
    const __m256i exp52 = _mm256_set1_epi64x(0x4330000000000000LL); /* 2**52's bits: or in < 2**32 */
    const __m256d two52 = _mm256_set1_pd(4503599627370496.0);
    const __m256d two32 = _mm256_set1_pd(TWO32), half3 = _mm256_set1_pd(1.5);
    const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
    const double end_d = (double)end;
    while (n) {
        Py_ssize_t still = 0, t = 0;
        for (; t + 4 <= n; t += 4) {
            __m256i s = _mm256_loadu_si256((const __m256i *)&b->state[t]);
            __m256d at = _mm256_loadu_pd(&b->index[t]);
            __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(s, 32), mult_lo),
                                             _mm256_mul_epu32(s, mult_hi));
            s = _mm256_add_epi64(_mm256_mul_epu32(s, mult_lo), _mm256_slli_epi64(cross, 32));
            __m256d hi = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(s, 32), exp52)), two52);
            __m256d lo = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(s, low32), exp52)), two52);
            __m256d state_d = _mm256_add_pd(_mm256_mul_pd(hi, two32), lo);
            __m256d base = _mm256_add_pd(at, half3);
            __m256d x = _mm256_sub_pd(_mm256_div_pd(_mm256_mul_pd(base, two32), _mm256_sqrt_pd(state_d)), base);
            __m256d gap = _mm256_round_pd(x, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
            gap = _mm256_blendv_pd(gap, one, _mm256_cmp_pd(gap, zero, _CMP_EQ_OQ));
            __m256d next = _mm256_add_pd(at, gap);
            uint64_t states[4];
            double was[4], now[4];
            _mm256_storeu_si256((__m256i *)states, s);
            _mm256_storeu_pd(was, at);
            _mm256_storeu_pd(now, next);
            for (int k = 0; k < 4; k++) {
                const uint64_t *w = b->words[t + k];
                uint64_t check = b->check[t + k];
                add_to_cell(cells, count, start, (long long)was[k], w, check);
                b->words[still] = w;
                b->check[still] = check;
                b->state[still] = states[k];
                b->index[still] = now[k];
                still += now[k] < end_d;
            }
        }
        for (; t < n; t++) still = step_one(b, t, still, start, end, cells, count);
        n = still;
    }
}
#endif

static int simd_enabled = 0;

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
    block_t block;

    Py_BEGIN_ALLOW_THREADS
    /* A block of ids at a time, walked in rounds (walk_block). */
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
            block.words[nb] = w;
            block.check[nb] = big_endian(mix64(h ^ key_check)); /* the checksum's wire bytes */
            block.state[nb] = mix64(h ^ key_seed) | 1;
            block.index[nb] = 0.0;
            nb++;
            p++;
        }
#ifdef HAVE_AVX2_PATH
        if (simd_enabled) {
            walk_block_avx2(&block, nb, start, end, cells, count);
            continue;
        }
#endif
        walk_block(&block, nb, start, end, cells, count);
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

PyDoc_STRVAR(simd_doc,
"simd(enabled=None) -> bool\n\n"
"Whether encode walks four ids at once with AVX2 (on wherever the processor has it); enabled=False\n"
"turns it off (True turns it on if the processor has it), for the tests to compare the two paths.\n"
"Returns the setting now.");

static PyObject *simd(PyObject *self, PyObject *args) {
    PyObject *enabled = Py_None;
    if (!PyArg_ParseTuple(args, "|O", &enabled)) return NULL;
    if (enabled != Py_None) {
        int want = PyObject_IsTrue(enabled);
        if (want < 0) return NULL;
#ifdef HAVE_AVX2_PATH
        simd_enabled = want && __builtin_cpu_supports("avx2");
#endif
    }
    return PyBool_FromLong(simd_enabled);
}

static PyMethodDef methods[] = {
    {"simd", simd, METH_VARARGS, simd_doc},
    {"encode", encode, METH_VARARGS, encode_doc},
    {"peel", peel, METH_VARARGS, peel_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_riblt_kernel", "The rateless IBLT encoder's inner loop (see riblt_numpy).", -1, methods,
};

PyMODINIT_FUNC PyInit__riblt_kernel(void) {
#ifdef HAVE_AVX2_PATH
    __builtin_cpu_init();
    simd_enabled = __builtin_cpu_supports("avx2");
#endif
    return PyModule_Create(&module);
}
