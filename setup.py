"""The one thing pyproject.toml cannot yet say without an experimental table: the C extension.

agent/ledgersync/_riblt_kernel.c is the rateless IBLT encoder's inner loop; it needs Python's
headers only. It is optional: without a C compiler the install goes on, and riblt_numpy runs its
numpy rounds instead (same symbols, about twenty times slower at a million ids).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "agent.ledgersync._riblt_kernel",
            sources=["agent/ledgersync/_riblt_kernel.c"],
            optional=True,
        )
    ]
)
