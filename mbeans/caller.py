"""Who calls the management plane: a user of node.conf's managementUsers with its role, and the
surface the call came through. Plain data, imported by the model and the adapters alike."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(Enum):
    READ_ONLY = "read-only"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role


@dataclass(frozen=True)
class Caller:
    """Who calls, and through which surface (rest, jsonrpc, jolokia); client is the tool the request
    says it came from (shell, cli: its User-Agent), which nothing trusts but the audit log records."""

    principal: Principal
    surface: str
    client: str | None = None

    @property
    def via(self) -> str:
        """The surface as the audit log records it: `jsonrpc (shell)`, `rest`."""
        return self.surface if not self.client else f"{self.surface} ({self.client})"


CLIENT_AGENT_PREFIX = "ledger-agent-"  # User-Agent of the operator tools: ledger-agent-shell/0.1.0


def client_of(user_agent: str | None) -> str | None:
    """The operator tool a User-Agent names (`shell` for `ledger-agent-shell/0.1.0`), else None."""
    if not user_agent or not user_agent.startswith(CLIENT_AGENT_PREFIX):
        return None
    name = user_agent[len(CLIENT_AGENT_PREFIX) :].split("/", 1)[0]
    return name if name.isalnum() and len(name) <= 20 else None
