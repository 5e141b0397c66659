"""The one thing pyproject.toml cannot yet say without an experimental table: the C extensions.

agent/ledgersync/_riblt_kernel.c is the rateless IBLT encoder's inner loop; it needs Python's
headers only. It is optional: without a C compiler the install goes on, and riblt_numpy runs its
numpy rounds instead (same symbols, about twenty times slower at a million ids).

agent/ledger/_canonical.c vouches that CBOR bytes are canonical in one walk, where serialization
would encode what it decoded again (Python's headers only; optional: without it, it re-encodes).

agent/ledger/_ed25519.c checks a batch of Ed25519 signatures with OpenSSL's libcrypto (headers from
libssl-dev) in one release of the GIL, asking libsodium first where the system has it (opened at run
time: no headers needed; see the file for why the answers stay OpenSSL's). Optional too: without it,
agent.ledger.keys.verify_batch checks one signature at a time with cryptography (the same answers;
slower beside a busy thread).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "agent.ledgersync._riblt_kernel",
            sources=["agent/ledgersync/_riblt_kernel.c"],
            optional=True,
        ),
        Extension(
            "agent.ledger._canonical",
            sources=["agent/ledger/_canonical.c"],
            optional=True,
        ),
        Extension(
            "agent.ledger._ed25519",
            sources=["agent/ledger/_ed25519.c"],
            libraries=["crypto", "dl"],  # dl: dlopen on a glibc before 2.34
            optional=True,
        ),
    ]
)
