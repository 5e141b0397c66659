"""Who may do what through the management plane: two roles, checked before any bean is touched.

read-only: read attributes, INFO operations (statuses, "Is..." questions), search, list, metrics.
operator: all of that, and write attributes and ACTION operations (schedule, stop, kill, refresh).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from werkzeug.datastructures import Authorization

from mbeans.errors import SecurityException
from mbeans.model import Impact

REALM = 'Basic realm="ledger-agent"'  # WWW-Authenticate of every 401 the adapters answer


class Role(Enum):
    READ_ONLY = "read-only"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role


Authenticator = Callable[[Authorization | None], Principal | None]
"""The caller of a request, or None when its credentials are missing or wrong (the agent's users)."""


def require_read(principal: Principal, what: str) -> None:
    """Every authenticated role may read; kept as a call so each adapter checks in one place."""
    del principal, what


def require_action(principal: Principal, what: str) -> None:
    if principal.role is not Role.OPERATOR:
        raise SecurityException(
            f"{what} needs the operator role; user {principal.username!r} has {principal.role.value}"
        )


def require_operation(principal: Principal, impact: Impact, what: str) -> None:
    if impact is Impact.ACTION:
        require_action(principal, what)
    else:
        require_read(principal, what)
