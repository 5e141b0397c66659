"""What one management request may ask of the agent: its body, its bulk or batch, its nesting, and
the size of its answer. Without them one read-only user's 1 MiB Jolokia bulk took 72 s of the
server's time and returned 80 MB (issue 16); each surface answers a request past a bound with its
own protocol's named error (docs/management.md, "Limits")."""

from __future__ import annotations

import json
from typing import Any

from mbeans.errors import IllegalArgumentException

MAX_BODY_BYTES = 256 * 1024  # a management request's body; Flask answers a longer one 413
MAX_BULK = 100  # requests in one Jolokia bulk, calls in one JSON-RPC batch
MAX_JSON_DEPTH = 32  # arrays and objects inside one another in a body
MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # a Jolokia bulk's answers; the requests past it are not run


class RequestTooLargeError(IllegalArgumentException):
    """A management request past a bound of size (body, bulk, answers); the message names which and
    the limit (Jolokia: 400 java.lang.IllegalArgumentException; JSON-RPC: -32600; REST: 413)."""


class JsonTooDeepError(IllegalArgumentException):
    """A body nesting deeper than MAX_JSON_DEPTH (Jolokia: 400; JSON-RPC: -32700; REST: 400)."""


def parse_json(text: str) -> Any:
    """The body as JSON; ValueError when it is not JSON, JsonTooDeepError when it nests deeper than
    MAX_JSON_DEPTH (json itself gives RecursionError far deeper, which Flask answered 500)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep() from None
    if depth(value) > MAX_JSON_DEPTH:
        raise too_deep()
    return value


def too_deep() -> JsonTooDeepError:
    return JsonTooDeepError(f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels")


def bulk_too_large(count: int, what: str) -> RequestTooLargeError:
    return RequestTooLargeError(f"a {what} holds at most {MAX_BULK} requests; this one holds {count}")


def body_too_large() -> RequestTooLargeError:
    return RequestTooLargeError(f"the body is larger than {MAX_BODY_BYTES} bytes")


def depth(value: Any) -> int:
    """How deep arrays and objects nest in value (a scalar is 0); iterative, so any depth is safe."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        if level > deepest:
            deepest = level
            if deepest > MAX_JSON_DEPTH:
                return deepest
        stack.extend((child, level) for child in children)
    return deepest
