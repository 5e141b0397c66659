"""HTTP basic auth against node.conf's managementUsers, shared by every management endpoint.

Every answer costs the same whether the user exists or not: an unknown user's password is checked
against a dummy hash with the users' PBKDF2 iterations, so a user name cannot be told by timing.
Failed logins back their address off (agent.login_throttle) and each is written to the
audit log: action `login`, the user name tried, the address as target, outcome
`refused: bad credentials` (and the back-off when it starts one), the surface. Never the password.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from werkzeug.datastructures import Authorization

from agent.config import ManagementUser
from agent.hospital.records import AuditEntry
from agent.login_throttle import LoginThrottle
from agent.passwords import ITERATIONS, dummy_hash, iterations_of, verify_password
from agent.ports.hospital import AuditLog
from mbeans.access import Principal, Role

log = logging.getLogger("ledger_agent.audit")

LOGIN = "login"  # the audit log's action for a login
NO_ROLE = "-"  # the audit log's role of a user name that failed to log in
BAD_CREDENTIALS = "refused: bad credentials"
MAX_USER_CHARS = 255  # node_audit_log.username's width


class ManagementAuth:
    def __init__(self, users: Sequence[ManagementUser], throttle: LoginThrottle, audit: AuditLog) -> None:
        self._users = {u.username: u for u in users}
        self._throttle = throttle
        self._audit = audit
        iterations = [i for u in users if (i := iterations_of(u.password_hash)) is not None]
        self._dummy = dummy_hash(iterations=max(iterations, default=ITERATIONS))

    def principal(
        self, authorization: Authorization | None, *, address: str, surface: str
    ) -> Principal | None:
        """The caller, or None when the credentials are missing or wrong (the same answer for both);
        TooManyLoginAttemptsError, before any password is checked, while address is backed off."""
        self._throttle.admit(address)
        if authorization is None or authorization.type != "basic":
            return None
        username = authorization.username or ""
        user = self._users.get(username)
        encoded = self._dummy if user is None else user.password_hash
        if verify_password(authorization.password or "", encoded) and user is not None:
            return Principal(user.username, Role(user.role))
        backed_off = self._throttle.failed(address, username)
        outcome = BAD_CREDENTIALS
        if backed_off:
            outcome += f"; {address} backed off for {self._throttle.settings.back_off_s:g} s"
        self._record(username, address, surface, outcome)
        return None

    def _record(self, username: str, address: str, surface: str, outcome: str) -> None:
        entry = AuditEntry(
            at=self._throttle.clock.now(),
            user=username[:MAX_USER_CHARS],
            role=NO_ROLE,
            action=LOGIN,
            reason=None,
            target=address,
            outcome=outcome,
            surface=surface,
        )
        try:
            self._audit.append(entry)
        except Exception:  # the refusal stands; an operator must see that its record is missing
            log.error("could not write the audit log's entry %s", entry, exc_info=True)
