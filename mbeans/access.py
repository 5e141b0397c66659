"""Who may do what through the management plane: two roles, checked before any bean is touched.

read-only: read attributes, INFO operations (statuses, "Is..." questions), search, list, metrics.
operator: all of that, and write attributes and ACTION operations (schedule, stop, kill, refresh).

An adapter checks the role itself before it touches a bean, except for an operation that checks its
caller itself (`Operation.checks_caller`: the agent's catalogue commands, whose one gate also writes
the refusal to the audit log); to that one the adapter hands the Caller: who, and through what.
"""

from __future__ import annotations

from typing import Protocol

from werkzeug.datastructures import Authorization

from agent.errors import TooManyLoginAttemptsError
from mbeans.caller import Caller, Principal, Role, client_of
from mbeans.errors import SecurityException
from mbeans.model import Attribute, Impact, Operation

__all__ = [
    "REALM",
    "THROTTLED_ERROR",
    "TOO_MANY_REQUESTS",
    "Authenticator",
    "Caller",
    "Principal",
    "Role",
    "authorize",
    "authorize_write",
    "client_address",
    "client_of",
    "retry_after",
]

REALM = 'Basic realm="ledger-agent"'  # WWW-Authenticate of every 401 the adapters answer
TOO_MANY_REQUESTS = 429  # the HTTP status of every answer to a backed-off address
THROTTLED_ERROR = "TooManyLoginAttempts"  # the `error` of a 429's JSON body (REST, /metrics)


def retry_after(exc: TooManyLoginAttemptsError) -> dict[str, str]:
    """The headers of a 429: when the address may try again."""
    return {"Retry-After": str(exc.retry_after_s)}


class Authenticator(Protocol):
    """The caller of a request, or None when its credentials are missing or wrong (the agent's users).
    Raises TooManyLoginAttemptsError while the client's address is backed off after failed logins:
    each adapter answers that with HTTP 429 and Retry-After, in its protocol's shape."""

    def __call__(
        self, authorization: Authorization | None, *, address: str, surface: str
    ) -> Principal | None: ...


def client_address(remote_addr: str | None) -> str:
    """The address a login is counted against: the TCP peer's (no proxy header is trusted)."""
    return remote_addr or "unknown"


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


def authorize_write(caller: Caller, attribute: Attribute, what: str) -> None:
    """What an adapter checks before writing attribute (with the caller): the operator role, unless the
    attribute checks its caller itself (and audits the write)."""
    if not attribute.checks_caller:
        require_action(caller.principal, what)
