/* Ed25519 signature checks a batch at a time, without the GIL; libsodium first where it is installed.
 *
 * Why a batch: one check is about 110 us of work that cryptography does with the GIL released, and
 * then the thread must take the GIL back. Beside a busy thread (Ledger Recovery's step recording a
 * batch), taking it back waits for the holder's switch interval (5 ms): a recovery's signature
 * threads spent some 70% of their time waiting (BENCHMARKS.md). Here a batch releases the GIL once.
 *
 * The answer is OpenSSL's own (EVP_DigestVerify with an ED25519 key, RFC 8032, S < L required): the
 * system's libcrypto (3.0 on Debian 12), where cryptography runs its own bundled copy (4.0 here);
 * tests/ledger/test_signature_batch.py compares the two on good, forged, non-canonical, wrong-key
 * and malformed-key signatures. Optional: without it, keys.verify_batch checks one
 * signature at a time with cryptography.
 *
 * Why libsodium first: OpenSSL 3.0 spends some 135 us a check here, libsodium 70 (the same curve
 * arithmetic; OpenSSL's EVP layer costs the rest). libsodium is the stricter of the two: it also
 * refuses small-order keys and R, and non-canonical keys. What it accepts, OpenSSL accepts (S < L in
 * both, the same point decoded, the same hash and the same cofactorless equation compared as bytes),
 * so a signature libsodium accepts is good, and one it refuses is asked of OpenSSL, whose answer
 * stands: the verdicts are OpenSSL's exactly, at libsodium's cost for the good ones. libsodium is
 * opened at run time (dlopen, no headers needed to build); without it every check is OpenSSL's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <openssl/evp.h>
#include <string.h>

#define KEY_SIZE 32
#define SIGNATURE_SIZE 64
#define KEYS_KEPT 64 /* a batch names few keys (the notary's, the parties'): each decoded once */

/* libsodium's crypto_sign_verify_detached: 0 when the signature verifies. */
typedef int (*sodium_verify_fn)(const unsigned char *sig, const unsigned char *m, unsigned long long mlen,
                                const unsigned char *pk);
static sodium_verify_fn sodium_verify = NULL;
static const char *SODIUM_NAMES[] = {"libsodium.so.23", "libsodium.so.26", "libsodium.so", NULL};

static void open_sodium(void) {
    for (int i = 0; SODIUM_NAMES[i] != NULL; i++) {
        void *lib = dlopen(SODIUM_NAMES[i], RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL) continue;
        int (*init)(void) = (int (*)(void))dlsym(lib, "sodium_init");
        sodium_verify_fn verify = (sodium_verify_fn)dlsym(lib, "crypto_sign_verify_detached");
        if (init != NULL && verify != NULL && init() >= 0) {
            sodium_verify = verify;
            return;
        }
        dlclose(lib);
    }
}

typedef struct {
    unsigned char raw[KEY_SIZE];
    EVP_PKEY *pkey; /* NULL: the bytes are not a key OpenSSL takes */
} kept_key;

static EVP_PKEY *key_for(kept_key *kept, int *n_kept, int *next_out, const unsigned char *raw) {
    for (int i = 0; i < *n_kept; i++) {
        if (!memcmp(kept[i].raw, raw, KEY_SIZE)) return kept[i].pkey;
    }
    int at;
    if (*n_kept < KEYS_KEPT) {
        at = (*n_kept)++;
    } else { /* many keys: reuse slots in turn */
        at = *next_out;
        *next_out = (at + 1) % KEYS_KEPT;
        EVP_PKEY_free(kept[at].pkey);
    }
    memcpy(kept[at].raw, raw, KEY_SIZE);
    kept[at].pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, KEY_SIZE);
    return kept[at].pkey;
}

PyDoc_STRVAR(verify_batch_doc,
"verify_batch(keys, signatures, messages, message_size) -> bytes\n\n"
"Check n Ed25519 signatures: keys holds n 32-byte public keys, signatures n 64-byte signatures and\n"
"messages n messages of message_size bytes, the i-th signature being the i-th key's over the i-th\n"
"message. Returns n bytes, 1 where the signature verifies and 0 where it does not (or the key is no\n"
"Ed25519 key), as OpenSSL says. The GIL is released for the whole batch. openssl_only: ask OpenSSL\n"
"alone, not libsodium first (for tests that compare the two).");

static PyObject *verify_batch(PyObject *self, PyObject *args) {
    Py_buffer keys, sigs, msgs;
    Py_ssize_t message_size;
    int openssl_only = 0;
    if (!PyArg_ParseTuple(args, "y*y*y*n|p", &keys, &sigs, &msgs, &message_size, &openssl_only)) return NULL;
    sodium_verify_fn sodium = openssl_only ? NULL : sodium_verify;
    PyObject *result = NULL;
    if (message_size < 0) {
        PyErr_SetString(PyExc_ValueError, "message_size must be >= 0");
        goto done;
    }
    Py_ssize_t n = keys.len / KEY_SIZE;
    if (keys.len % KEY_SIZE || sigs.len != n * SIGNATURE_SIZE || msgs.len != n * message_size) {
        PyErr_Format(PyExc_ValueError,
                     "for %zd keys: %zd bytes of signatures (64 each) and %zd of messages (%zd each) do not match",
                     n, sigs.len, msgs.len, message_size);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n);
    if (result == NULL) goto done;
    unsigned char *ok = (unsigned char *)PyBytes_AS_STRING(result);
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    kept_key kept[KEYS_KEPT];
    int n_kept = 0, next_out = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        failed = 1;
    } else {
        const unsigned char *key = keys.buf, *sig = sigs.buf, *msg = msgs.buf;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (sodium != NULL && sodium(sig + i * SIGNATURE_SIZE, msg + i * message_size,
                                         (unsigned long long)message_size, key + i * KEY_SIZE) == 0) {
                ok[i] = 1;
                continue;
            }
            EVP_PKEY *pkey = key_for(kept, &n_kept, &next_out, key + i * KEY_SIZE);
            ok[i] = 0;
            if (pkey != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1) {
                ok[i] = EVP_DigestVerify(ctx, sig + i * SIGNATURE_SIZE, SIGNATURE_SIZE, msg + i * message_size,
                                         (size_t)message_size) == 1;
            }
            EVP_MD_CTX_reset(ctx);
        }
        EVP_MD_CTX_free(ctx);
    }
    for (int i = 0; i < n_kept; i++) EVP_PKEY_free(kept[i].pkey);
    Py_END_ALLOW_THREADS
    if (failed) {
        Py_CLEAR(result);
        PyErr_NoMemory();
    }
done:
    PyBuffer_Release(&msgs);
    PyBuffer_Release(&sigs);
    PyBuffer_Release(&keys);
    return result;
}

static PyMethodDef methods[] = {
    {"verify_batch", verify_batch, METH_VARARGS, verify_batch_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ed25519", "Ed25519 signature checks a batch at a time (see agent.ledger.keys).", -1,
    methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ed25519(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    open_sodium();
    /* Which library checks first: for tests, and for an operator's `python -c` when figures differ. */
    if (PyModule_AddStringConstant(m, "FIRST_CHECK", sodium_verify != NULL ? "libsodium" : "openssl") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
