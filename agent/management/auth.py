"""HTTP basic auth against node.conf's managementUsers, shared by every management endpoint."""

from __future__ import annotations

from collections.abc import Sequence

from werkzeug.datastructures import Authorization

from agent.config import ManagementUser
from agent.passwords import verify_password
from mbeans.access import Principal, Role


class ManagementAuth:
    def __init__(self, users: Sequence[ManagementUser]) -> None:
        self._users = {u.username: u for u in users}

    def principal(self, authorization: Authorization | None) -> Principal | None:
        """The caller, or None when the credentials are missing or wrong (the same answer for both)."""
        if authorization is None or authorization.type != "basic":
            return None
        user = self._users.get(authorization.username or "")
        if user is None or not verify_password(authorization.password or "", user.password_hash):
            return None
        return Principal(user.username, Role(user.role))
