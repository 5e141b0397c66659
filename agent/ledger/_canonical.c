/* Whether CBOR bytes are, for certain, the canonical encoding of what they decode to.
 *
 * Why: serialization checks canonical form by encoding what it decoded again (cbor2.dumps with
 * canonical=True) and comparing; for a transaction that is some 20 us of the 57 its decoding costs,
 * all with the GIL held (Ledger Recovery decodes every transaction a peer sends). This walks the
 * bytes once instead.
 *
 * It answers True only for bytes it can vouch for, and "don't know" (False) for everything else,
 * after which the caller re-encodes as before: so what is refused, and the error that says why, stay
 * the re-encoding's. It vouches for one item, with nothing after it, built of
 *   - unsigned and negative integers, byte and text strings, arrays, and false, true and null,
 *   - maps whose keys are integers or strings,
 * where every head has its shortest form (the only one cbor2 writes) and the keys of each map are in
 * cbor2's canonical order (the shorter encoded key first, then bytewise: RFC 7049's canonical CBOR),
 * each strictly after the one before, so no two keys are one value. Text is valid UTF-8 because the
 * caller decoded the same bytes first, and valid UTF-8 encodes back to itself. Tags, floats, other
 * simple values and indefinite lengths are left to the re-encoding; so is nesting deeper than 64.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64

/* The item at *pos: 1 and *pos past it if it is canonical and within what this vouches for, else 0. */
static int item(const unsigned char *buf, size_t len, size_t *pos, int depth);

/* The head at *pos: its major type and argument, *pos past it; 0 if truncated or not shortest. */
static int head(const unsigned char *buf, size_t len, size_t *pos, int *major, uint64_t *arg) {
    if (*pos >= len) return 0;
    unsigned char initial = buf[(*pos)++];
    *major = initial >> 5;
    unsigned info = initial & 31;
    if (info < 24) {
        *arg = info;
        return 1;
    }
    if (info > 27) return 0; /* indefinite length or reserved */
    size_t size = (size_t)1 << (info - 24);
    if (len - *pos < size) return 0;
    uint64_t value = 0;
    for (size_t i = 0; i < size; i++) value = (value << 8) | buf[*pos + i];
    *pos += size;
    static const uint64_t smallest[] = {24, 256, 65536, 4294967296ULL};
    if (value < smallest[info - 24]) return 0;
    *arg = value;
    return 1;
}

static int key_before(const unsigned char *a, size_t a_len, const unsigned char *b, size_t b_len) {
    if (a_len != b_len) return a_len < b_len;
    return memcmp(a, b, a_len) < 0;
}

static int item(const unsigned char *buf, size_t len, size_t *pos, int depth) {
    if (depth > MAX_DEPTH) return 0;
    int major;
    uint64_t arg;
    size_t start = *pos;
    if (!head(buf, len, pos, &major, &arg)) return 0;
    switch (major) {
    case 0: /* unsigned integer */
    case 1: /* negative integer */
        return 1;
    case 2: /* byte string */
    case 3: /* text string */
        if (arg > len - *pos) return 0;
        *pos += (size_t)arg;
        return 1;
    case 4: /* array */
        if (arg > len - *pos) return 0; /* each element takes a byte at least */
        for (uint64_t i = 0; i < arg; i++) {
            if (!item(buf, len, pos, depth + 1)) return 0;
        }
        return 1;
    case 5: { /* map */
        if (arg > (len - *pos) / 2) return 0;
        const unsigned char *previous = NULL;
        size_t previous_len = 0;
        for (uint64_t i = 0; i < arg; i++) {
            size_t key_start = *pos;
            if (key_start >= len || (buf[key_start] >> 5) > 3) return 0; /* integers and strings only */
            if (!item(buf, len, pos, depth + 1)) return 0;
            size_t key_len = *pos - key_start;
            if (previous != NULL && !key_before(previous, previous_len, buf + key_start, key_len)) return 0;
            previous = buf + key_start;
            previous_len = key_len;
            if (!item(buf, len, pos, depth + 1)) return 0;
        }
        return 1;
    }
    case 7: /* false, true, null: one byte each */
        return *pos - start == 1 && arg >= 20 && arg <= 22;
    default: /* tags */
        return 0;
    }
}

PyDoc_STRVAR(is_canonical_doc,
"is_canonical(data) -> bool\n\n"
"True when data is certainly one canonical CBOR item (integers, strings, arrays, maps keyed by\n"
"integers or strings, false, true, null) and nothing after it; False when it is not, or holds what\n"
"this does not vouch for (tags, floats, ...): the caller then re-encodes to find out. data must have\n"
"decoded already (text is taken to be valid UTF-8).");

static PyObject *is_canonical(PyObject *self, PyObject *arg) {
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) return NULL;
    size_t pos = 0;
    int ok = item(data.buf, (size_t)data.len, &pos, 0) && pos == (size_t)data.len;
    PyBuffer_Release(&data);
    return PyBool_FromLong(ok);
}

static PyMethodDef methods[] = {
    {"is_canonical", is_canonical, METH_O, is_canonical_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_canonical", "Canonical CBOR, vouched for in one walk (see agent.ledger.serialization).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__canonical(void) { return PyModule_Create(&module); }
