"""Giving freed memory back to the OS, for the graph's build and a reconciliation's temporaries."""

from __future__ import annotations

import contextlib
import ctypes


def release_freed_memory() -> None:
    """Return the heap's free pages to the OS (glibc keeps them: ~25 MB a 1M-transaction build).

    glibc serves a large array from the heap, not mmap, once an array of that size was freed (its
    mmap threshold rises), and keeps freed heap memory, so temporaries stay in the RSS until trimmed.
    """
    # Not glibc: nothing to trim, or the allocator returns memory by itself.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


M_ARENA_MAX = -8  # glibc's mallopt parameter numbers
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20


def tune_malloc(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas, and fix its mmap threshold, for the agent process.

    glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core), and
    an arena keeps what its thread freed; with the server's worker threads, the scheduler and the
    graph loader, that is tens of MB of RSS held in arenas nobody uses any more. Two suffice for a
    process whose heavy work is in numpy and SQLite.

    glibc also raises its mmap threshold to the size of each large block freed (up to 32 MB): after
    one id-list page of a few MB, every array below that size came from the arenas, and a session's
    freed pages stayed in the RSS (a node that had served the id list once held ~70 MB more). A
    fixed threshold keeps every array of 1 MiB or more in its own mapping, returned when freed.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, arenas)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
