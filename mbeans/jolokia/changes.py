"""When the MBean tree last changed, for list's ifModifiedSince (Jolokia answers 304 when it has not).

"Changed" is what list shows: a bean registered or unregistered, or an attribute or operation added,
removed or described differently. Attribute values are not part of it (list does not show them). The
time is when this agent first saw the tree as it is (a fingerprint of list's output, compared on each
list that carries ifModifiedSince), and, before any such list, when the agent's endpoint was built.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any


class TreeChanges:
    """The time (epoch seconds) the tree last changed, as far as list requests have seen."""

    def __init__(self, started_at: float) -> None:
        self._changed_at = started_at
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    def changed_at(self, tree: dict[str, Any], now: float) -> float:
        """When the tree last changed, tree being what list shows now (at now)."""
        fingerprint = hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()
        with self._lock:
            if self._fingerprint is not None and fingerprint != self._fingerprint:
                self._changed_at = now
            self._fingerprint = fingerprint
            return self._changed_at


class NotModified(Exception):
    """Nothing changed since the request's ifModifiedSince: answered with status 304 and no value."""
