"""Who may do what through the management plane: two roles, checked before any bean is touched.

read-only: read attributes, INFO operations (statuses, "Is..." questions), search, list, metrics.
operator: all of that, and write attributes and ACTION operations (schedule, stop, kill, refresh).

An adapter checks the role itself before it touches a bean, except for an operation that checks its
caller itself (`Operation.checks_caller`: the agent's catalogue commands, whose one gate also writes
the refusal to the audit log); to that one the adapter hands the Caller: who, and through what.
"""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.datastructures import Authorization

from mbeans.caller import Caller, Principal, Role, client_of
from mbeans.errors import SecurityException
from mbeans.model import Impact, Operation

__all__ = ["REALM", "Authenticator", "Caller", "Principal", "Role", "authorize", "client_of"]

REALM = 'Basic realm="ledger-agent"'  # WWW-Authenticate of every 401 the adapters answer


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


def authorize(caller: Caller, operation: Operation, what: str) -> None:
    """What an adapter checks before invoking operation (with the caller): the role its impact needs,
    unless the operation checks its caller itself."""
    if not operation.checks_caller:
        require_operation(caller.principal, operation.impact, what)
