"""Management passwords: stored as salted PBKDF2-SHA256 hashes, never in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading

SCHEME = "pbkdf2_sha256"
ITERATIONS = 200_000

_verified: set[tuple[str, bytes]] = set()
_verified_lock = threading.Lock()


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "$".join(
        [SCHEME, str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def dummy_hash(*, iterations: int = ITERATIONS) -> str:
    """A well-formed hash that no password matches (a random digest), made without running PBKDF2: an
    unknown user's password is checked against it, so that it costs what a known user's does."""
    salt, digest = os.urandom(16), os.urandom(32)
    return "$".join(
        [SCHEME, str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def iterations_of(encoded: str) -> int | None:
    """The PBKDF2 iterations of a stored hash; None when it is not one."""
    return int(encoded.split("$")[1]) if is_hash(encoded) else None


def is_hash(encoded: str) -> bool:
    parts = encoded.split("$")
    return len(parts) == 4 and parts[0] == SCHEME and parts[1].isdigit()


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check; a success is remembered in memory so each request does not pay PBKDF2."""
    if not is_hash(encoded):
        return False
    memo = (encoded, hashlib.sha256(password.encode("utf-8")).digest())
    with _verified_lock:
        if memo in _verified:
            return True
    _, iterations, salt, digest = encoded.split("$")
    try:
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    ok = hmac.compare_digest(actual, expected)
    if ok:
        with _verified_lock:
            _verified.add(memo)
    return ok
