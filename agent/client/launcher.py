"""Start and stop agent processes on this machine, and talk to their management endpoints.

Used by `ledger-agent demo` and by the multi-process tests: each process is started with its own
session, waited on by polling /health with a deadline (never a fixed sleep), and stopped by its own
PID with SIGTERM, then SIGKILL if it does not stop in time.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from agent import __version__
from agent.client.nodeconf import management_verify, read_node_conf
from agent.errors import AgentError
from agent.operator_api.layout import PASSWORD_FILE

NOT_FOUND = 404

# As agent.p2p.http's (which the tools do not import): headers and body go out as two writes, and
# without TCP_NODELAY Nagle's algorithm holds the second until the server's delayed ACK (40 ms).
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class AgentProcessError(AgentError):
    """An agent process that did not start, or answered a management call with an error."""


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's ip_local_port_range; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(count: int, *, start: int = 20000, end: int | None = None) -> int:
    """A base port with count consecutive ports free on 127.0.0.1 (checked by binding each).

    Below the ephemeral range by default: outgoing connections take their local ports from there, so a
    port in it that an agent gave up when it was stopped could be taken by any connection before the
    agent started again on it (a test that restarts an agent failed so: "address already in use").
    Where to start in [start, end) depends on the process id, so that parallel test workers rarely
    probe the same ports.
    """
    stop = _ephemeral_low() if end is None else end
    slots = (stop - start) // count
    if slots < 1:
        raise AgentProcessError(f"no room for {count} consecutive ports between {start} and {stop}")
    first = (os.getpid() * 7) % slots
    for k in range(slots):
        base = start + (first + k) % slots * count
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AgentProcessError(f"no {count} consecutive free ports between {start} and {stop}")


@dataclass
class ManagementClient:
    """The management endpoint of one agent, with the operator's credentials; over HTTPS, checking
    the endpoint's certificate against ca_file (node.conf's certificates/network-root.pem), when given."""

    address: str
    username: str
    password: str = field(repr=False)
    timeout: float = 60.0
    tool: str | None = None  # the operator tool calling (cli): its User-Agent, which the audit log records
    ca_file: Path | None = None
    _client: httpx.Client | None = field(default=None, repr=False, compare=False)

    @classmethod
    def for_node(
        cls, config: Path, username: str, password: str, *, tool: str | None = None
    ) -> ManagementClient:
        """The client of the agent whose node.conf is config: its address, scheme and CA from there."""
        node = read_node_conf(config)
        return cls(node.management_netloc, username, password, tool=tool, ca_file=node.ca_file)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ca_file is not None else 'http'}://{self.address}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return management_verify(self.ca_file)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _url(self, path: str) -> str:
        return self.base_url + path

    def health(self) -> dict[str, Any]:
        response = httpx.get(self._url("/health"), timeout=2.0, verify=self.verify)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def call(self, method: str, path: str, body: Any = None, *, missing: Any = None) -> Any:
        """The agent's answer; missing instead of an error on a 404 when given."""
        if self._client is None:
            headers = {"User-Agent": f"ledger-agent-{self.tool}/{__version__}"} if self.tool else None
            self._client = httpx.Client(
                timeout=self.timeout,
                transport=httpx.HTTPTransport(socket_options=NO_DELAY, verify=self.verify),
                trust_env=False,
                headers=headers,
            )
        response = self._client.request(
            method, self._url(path), json=body, auth=(self.username, self.password)
        )
        payload = response.json()
        if response.status_code == NOT_FOUND and missing is not None:
            return missing
        if response.status_code >= 400:
            raise AgentProcessError(f"{payload.get('error')}: {payload.get('message')}")
        return payload

    def issue(
        self, holdings: list[tuple[str, int]], currency: str, observers: list[str] | None = None
    ) -> str:
        body = {"holdings": [{"owner": o, "amount": a} for o, a in holdings], "currency": currency}
        body["observers"] = observers or []
        return str(self.call("POST", "/api/flows/issue", body)["txId"])

    def pay(
        self,
        to: str,
        amount: int,
        currency: str,
        issuer: str,
        observers: list[str] | None = None,
        *,
        wait: float | None = None,
    ) -> str:
        """The payment's transaction id; with wait, the agent answers after that many seconds at most,
        while its FinalityFlow goes on (202 Accepted)."""
        body: dict[str, Any] = {
            "to": to,
            "amount": amount,
            "currency": currency,
            "issuer": issuer,
            "observers": observers or [],
        }
        if wait is not None:
            body["timeout"] = wait
        return str(self.call("POST", "/api/flows/pay", body)["txId"])

    def vault(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/api/vault")
        return result

    def flows(self, status: str | None = None, **filters: str) -> list[dict[str, Any]]:
        """GET /api/flows; filters as the endpoint names them (flowName, step, counterparty, txId, olderThan)."""
        query = {"status": status, **filters} if status else dict(filters)
        path = "/api/flows" + ("?" + urlencode(query) if query else "")
        result: list[dict[str, Any]] = self.call("GET", path)
        return result

    def pause_flow(self, flow_id: str, reason: str | None = None) -> bool:
        return bool(self.call("POST", f"/api/flows/pause/{flow_id}", _reason(reason))["paused"])

    def resume_flow(self, flow_id: str, reason: str | None = None) -> bool:
        return bool(self.call("POST", f"/api/flows/resume/{flow_id}", _reason(reason))["resumed"])

    def retry_flow(self, flow_id: str, reason: str | None = None) -> bool:
        """retryFlow: a HOSPITALIZED or PAUSED flow runs again from its checkpoint; False if neither."""
        return bool(self.call("POST", f"/api/flows/retry/{flow_id}", _reason(reason))["retried"])

    def patients(self, *, include_failed: bool = False, **filters: Any) -> list[dict[str, Any]]:
        """GET /api/hospital: the flow hospital's patients, with their history; filters by their
        names (status, diagnosis, staff, errorType, flowName, peer, step, minAgeSeconds, minAttempts)."""
        query = {k: _query_value(v) for k, v in filters.items() if v is not None}
        if include_failed:
            query["includeFailed"] = "true"
        result: list[dict[str, Any]] = self.call("GET", "/api/hospital" + _query(query))
        return result

    def patient(self, flow_id: str) -> dict[str, Any]:
        """GET /api/hospital/<id>: one flow with its retry history."""
        result: dict[str, Any] = self.call("GET", f"/api/hospital/{flow_id}")
        return result

    def bulk(
        self,
        action: str,
        filters: dict[str, Any],
        reason: str,
        *,
        dry_run: bool = True,
        batch_size: int | None = None,
        batch_interval: float | None = None,
    ) -> dict[str, Any]:
        """POST /api/flows/bulk: the dry run (by default), or the job it started."""
        body: dict[str, Any] = {"action": action, "filter": filters, "reason": reason, "dryRun": dry_run}
        if batch_size is not None:
            body["batchSize"] = batch_size
        if batch_interval is not None:
            body["batchIntervalSeconds"] = batch_interval
        result: dict[str, Any] = self.call("POST", "/api/flows/bulk", body)
        return result

    def corda_bulk(self, verb: str, reason: str) -> dict[str, Any]:
        """pauseAll, pauseAllHospitalized, retryAllPaused or retryAllPausedHospitalized: the job."""
        result: dict[str, Any] = self.call("POST", f"/api/flows/{verb}", {"reason": reason})
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /api/flows/bulk/<id>: a bulk job's progress and its result per flow; a finality recovery
        job's from GET /api/finality/jobs/<id> (the listing of jobs shows both kinds)."""
        result: dict[str, Any] = self.call("GET", f"/api/flows/bulk/{job_id}", missing={})
        if not result:
            result = self.call("GET", f"/api/finality/jobs/{job_id}")
        return result

    def jobs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/api/flows/bulk")
        return result

    def audit(
        self, *, user: str | None = None, action: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """GET /api/audit: the audit log, newest first."""
        query = {
            k: str(v) for k, v in (("user", user), ("action", action), ("limit", limit)) if v is not None
        }
        result: list[dict[str, Any]] = self.call("GET", "/api/audit" + _query(query))
        return result

    def start_flow(self, name: str, **arguments: Any) -> dict[str, Any]:
        """`flow start name key: value, ...`: {"flow", "result" (JSON), "text" (as the shell prints)}."""
        result: dict[str, Any] = self.call("POST", f"/api/flows/start/{name}", arguments)
        return result

    def kill_flow(self, flow_id: str, reason: str | None = None) -> bool:
        return bool(self.call("POST", f"/api/flows/kill/{flow_id}", _reason(reason))["killed"])

    def ledgersync(self) -> dict[str, Any]:
        """The ledger graph's state and the reconciliation counts (GET /api/ledgersync)."""
        result: dict[str, Any] = self.call("GET", "/api/ledgersync")
        return result

    def wait_ledgersync_ready(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the ledger graph is built and checked; its state. Raises AgentProcessError."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            state = self.ledgersync()
            if state.get("ledgerGraphIsInitialized"):
                return state
            if time.monotonic() > deadline:
                raise AgentProcessError(f"the ledger graph was not ready within {timeout}s: {state}")
            pause.wait(0.05)

    def transaction(self, tx_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.call("GET", f"/api/transactions/{tx_id}")
        except AgentProcessError as exc:
            if "TransactionNotFoundError" in str(exc):
                return None
            raise
        return result


def _reason(reason: str | None) -> dict[str, Any] | None:
    return None if reason is None else {"reason": reason}


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _query(query: dict[str, str]) -> str:
    return "?" + urlencode(query) if query else ""


def follow_job(
    read: Callable[[], dict[str, Any]],
    timeout: float,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    on_unreachable: Callable[[Exception], None] | None = None,
    poll_s: float = 0.5,
    transient: tuple[type[Exception], ...] = (),
) -> dict[str, Any]:
    """Read a bulk job until it has finished; its last state. on_change hears each new progress. The
    job lives on the agent: an agent that stops answering for a while (a restart: an HTTP error, or one
    of transient) is waited for, until timeout; AgentProcessError then."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    unreachable: tuple[type[Exception], ...] = (httpx.HTTPError, OSError, *transient)
    seen: tuple[Any, ...] | None = None
    down = False
    while True:
        try:
            job = read()
        except unreachable as exc:
            if not down and on_unreachable is not None:
                on_unreachable(exc)
            down = True
        else:
            down = False
            now = (job.get("status"), job.get("processed"), job.get("waitingFor"))
            if now != seen and on_change is not None:
                on_change(job)
            seen = now
            if job.get("finished"):
                return job
        if time.monotonic() > deadline:
            raise AgentProcessError(f"the bulk job had not finished after {timeout:.0f} s; it goes on")
        pause.wait(poll_s)


@dataclass
class AgentProcess:
    """One `ledger-agent run` process."""

    config: Path
    log_path: Path
    management: ManagementClient
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The log says what peers sent and what the node did: its owner's only (0600), like the store.
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def wait_ready(self, deadline_s: float = 60.0) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AgentProcessError(
                    f"{self.config} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                self.management.health()
                return
            except httpx.HTTPError:
                time.sleep(0.05)  # polling interval while waiting on a condition with a deadline
        raise AgentProcessError(f"{self.config} not healthy after {deadline_s:.0f} s:\n{self.log_tail()}")

    def wait_exit(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM by PID, then SIGKILL after timeout; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            self.management.close()
            return None if self.process is None else self.process.returncode
        self.management.close()
        os.kill(self.process.pid, signal.SIGTERM)
        code = self.wait_exit(timeout)
        if code is None:
            os.kill(self.process.pid, signal.SIGKILL)
            code = self.process.wait(timeout=10)
        return code

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextmanager
def scratch_postgres_databases(
    admin_url: str, prefix: str = "ledger_agent_node"
) -> Iterator[Callable[[object], str]]:
    """A function giving each node a fresh PostgreSQL database; all are dropped on exit."""
    import psycopg2

    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    made: list[str] = []

    def url_for(_: object) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return admin_url.rsplit("/", 1)[0] + "/" + name

    try:
        yield url_for
    finally:
        with admin.cursor() as cur:
            for name in made:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def read_password(node_folder: Path) -> str:
    """The operator's management password, as `network init` left it in the node folder."""
    return (node_folder / PASSWORD_FILE).read_text().strip()
