"""`ledger-agent run`: one node's agent as a process, served by cheroot (agent.http_server).

What it serves is built by the composition root (agent.composition.build_agent); this module only
serves it. Before that, node.conf is read, both addresses bound (agent.listeners) and the TLS
contexts built from the certificate files (agent.network.tls): a bad key, an address that cannot be
listened on or a TLS file missing or unreadable stops the start with one line naming it (exit 2),
before the store is opened, a thread started or a line logged.

Two listeners, each with its own pool of worker threads: the peer endpoint (p2pAddress,
`p2pThreads`, mutual TLS when `p2pTls`) and the management endpoint (managementAddress,
`managementThreads`, HTTPS when `managementSsl.useSsl`), so long peer sessions cannot make monitoring
calls queue, nor the other way round. On SIGTERM or SIGINT they stop accepting, the requests and
flows under way get up to `grace` seconds to finish (their checkpoints say where each stood if they
do not), and the store is closed; the process then exits 0.

Once everything is built, the objects alive are frozen out of the cyclic garbage collector
(`gc.freeze`). They are the modules, the apps and the runtime, ~80,000 objects that live as long
as the process; a full collection walked them all, which stopped every thread for 45 to 150 ms on a
2-vCPU machine, the largest part of the management plane's p99 at 200 requests/s. Frozen objects
are still freed by reference counting; only a cycle among them that becomes garbage later is kept.
A young collection then waits for 10,000 new objects, not CPython's 700 (GC_THRESHOLDS): Ledger
Recovery decodes some 50,000 objects a batch that live until the batch is recorded, and at 700
they were walked again and again and promoted into full collections, 13% of a 100,000-transaction
recovery's time (BENCHMARKS.md).

The process's umask is 077 and its log is as node.conf's logging block says (agent.logs.setup):
docs/security.md, "Files and keys", and docs/logging.md.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from agent.composition import Agent, build_agent
from agent.config import NodeConfig, load_node_config
from agent.files import PRIVATE_UMASK, warn_if_open
from agent.http_server import Listener
from agent.ledgersync.memory import tune_malloc
from agent.listeners import Listeners, bind_listeners
from agent.logs.setup import configure_logging
from agent.network.bootstrap import IDENTITY_KEY_FILE
from agent.network.tls import TlsFiles, management_server_context, peer_server_context
from agent.operator_api.layout import MONITOR_PASSWORD_FILE, PASSWORD_FILE

log = logging.getLogger("ledger_agent.process")


def _stop(signum: int, frame: FrameType | None) -> None:
    # Raised in the main thread, which waits in serve(); then we shut down in order.
    raise SystemExit(0)


@dataclass(frozen=True)
class ServerTls:
    """The TLS contexts of both listeners; None where node.conf turns TLS off (p2pTls, managementSsl)."""

    peer: ssl.SSLContext | None
    management: ssl.SSLContext | None


def server_tls(config: NodeConfig) -> ServerTls:
    """Built from the certificate files: a ConfigurationError naming `p2pTls` or `managementSsl` and
    the file when one is missing or unreadable, or a certificate does not match its key."""
    return ServerTls(
        peer_server_context(config.p2p_tls_files) if config.p2p_tls else None,
        management_server_context(config.management_tls_files) if config.management_ssl else None,
    )


def serve(
    agent: Agent,
    listeners: Listeners,
    tls: ServerTls,
    *,
    grace: float = 30.0,
    ready: threading.Event | None = None,
    freeze_gc: bool = False,
) -> None:
    """Serve both listeners (bound, agent.listeners; with tls, from server_tls) until SIGTERM/SIGINT;
    freeze_gc only in a process of its own (see above)."""
    runtime = agent.runtime
    config = runtime.node.config
    peer_tls, management_tls = tls.peer, tls.management
    peer = Listener(
        "p2p",
        listeners.peer,
        agent.peer_app,
        threads=config.p2p_threads,
        tls=peer_tls,
        certificate=_pair(config.p2p_tls_files),
        # The peer app refuses an oversized message itself, in the peer protocol's terms.
        max_request_body_size=0,
    )
    management = Listener(
        "management",
        listeners.management,
        agent.management_app,
        threads=config.management_threads,
        tls=management_tls,
        certificate=_pair(config.management_tls_files),
        max_request_body_size=1024 * 1024,
    )
    done = threading.Event()
    failure: list[BaseException] = []

    def failed(exc: BaseException) -> None:
        log.error("a listener stopped on an error: %s", exc, exc_info=exc)
        failure.append(exc)
        done.set()

    peer.start(failed)
    management.start(failed)
    scheme = ("https" if peer_tls else "http", "https" if management_tls else "http")
    log.info(
        "%s serving peers on %s://%s:%s (%d threads) and management on %s://%s:%s (%d threads)",
        runtime.node.identity.name,
        scheme[0],
        *config.p2p_address,
        config.p2p_threads,
        scheme[1],
        *config.management_address,
        config.management_threads,
    )
    if freeze_gc:
        settle_gc()
    if ready is not None:
        ready.set()
    try:
        done.wait()  # a signal's handler raises SystemExit here
    finally:
        log.info("stopping: finishing requests and flows under way (up to %.0f s)", grace)
        deadline = time.monotonic() + grace
        for listener in (peer, management):
            listener.stop(max(0.0, deadline - time.monotonic()))
        agent.stop(grace)
        log.info("stopped")
    if failure:
        raise SystemExit(1)


# Collections per generation (CPython's default: 700, 10, 10); see the module's docstring.
GC_THRESHOLDS = (10_000, 10, 10)


def settle_gc() -> None:
    """Once the agent is built and started, in a process of its own: free what is garbage now, freeze
    what is left out of the collector, and let young collections wait for GC_THRESHOLDS[0] objects."""
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _pair(files: TlsFiles) -> tuple[str, str]:
    return str(files.certificate), str(files.key)


def run_agent(config_path: Path) -> int:
    # Whatever the agent creates from here on (the database and its journals, logs, backups) is its
    # owner's only: the wrapped AES keys in the database protect nothing once others can read it.
    os.umask(PRIVATE_UMASK)
    config = load_node_config(config_path)
    # Refused here, a ConfigurationError is the one line `ledger-agent run` prints (exit 2): nothing has
    # been logged or started yet.
    listeners = bind_listeners(config)
    try:
        # Likewise a TLS file missing or unreadable: refused before the store is opened.
        tls = server_tls(config)
        logs = configure_logging(config.logging)
        try:
            tune_malloc()  # before any thread starts, so they share the few arenas
            # Built first: a node.conf or network map it refuses is the one line printed, with no warning
            # before it.
            agent = build_agent(config_path)
            folder = config.base_directory
            warn_if_open(
                [
                    config.path,
                    config.certificates_directory / IDENTITY_KEY_FILE,
                    config.p2p_tls_files.key,
                    config.management_tls_files.key,
                    folder / PASSWORD_FILE,  # `network init` leaves the passwords there, in clear
                    folder / MONITOR_PASSWORD_FILE,
                ]
            )
            try:
                agent.start()
            except BaseException:
                agent.stop(0)
                raise
            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            serve(agent, listeners, tls, freeze_gc=True)
        finally:
            logs.close()
    finally:
        listeners.close()
    return 0
