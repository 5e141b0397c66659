"""`ledger-agent run`: one node's agent as a process, served by waitress (a production WSGI server).

What it serves is built by the composition root (agent.composition.build_agent); this module only
serves it. Before that, node.conf is read and both addresses bound (agent.listeners): a bad key or an
address that cannot be listened on stops the start with one line naming it (exit 2), before the store
is opened, a thread started or a line logged.

Two listeners share one event loop, each with its own pool of worker threads: the peer endpoint
(p2pAddress, `p2pThreads`) and the management endpoint (managementAddress, `managementThreads`), so
long peer sessions cannot make monitoring calls queue, nor the other way round. On SIGTERM or SIGINT
the loop stops accepting, the requests and flows under way get up to `grace` seconds to finish (their
checkpoints say where each stood if they do not), and the store is closed; the process then exits 0.

Once everything is built, the objects alive are frozen out of the cyclic garbage collector
(`gc.freeze`). They are the modules, the apps and the runtime, ~80,000 objects that live as long
as the process; a full collection walked them all, which stopped every thread for 45 to 150 ms on a
2-vCPU machine, the largest part of the management plane's p99 at 200 requests/s. Frozen objects
are still freed by reference counting; only a cycle among them that becomes garbage later is kept.

The process's umask is 077 and its log is as node.conf's logging block says (agent.logs.setup):
docs/security.md, "Files and keys", and docs/logging.md.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from waitress.server import create_server
from waitress.task import ThreadedTaskDispatcher

from agent.composition import Agent, build_agent
from agent.config import load_node_config
from agent.files import PRIVATE_UMASK, warn_if_open
from agent.ledgersync.memory import tune_malloc
from agent.listeners import Listeners, bind_listeners
from agent.logs.setup import configure_logging
from agent.network.bootstrap import IDENTITY_KEY_FILE
from agent.operator_api.layout import MONITOR_PASSWORD_FILE, PASSWORD_FILE
from agent.p2p.waitress_errors import peer_channel

log = logging.getLogger("ledger_agent.process")


def _stop(signum: int, frame: FrameType | None) -> None:
    # waitress's loop ends on SystemExit raised in the main thread, then we shut down in order.
    raise SystemExit(0)


def _pool(threads: int) -> ThreadedTaskDispatcher:
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(threads)
    return dispatcher


def serve(
    agent: Agent,
    listeners: Listeners,
    *,
    grace: float = 30.0,
    ready: threading.Event | None = None,
    freeze_gc: bool = False,
) -> None:
    """Serve both listeners (bound, agent.listeners) until SIGTERM/SIGINT; freeze_gc only in a process of
    its own (see above)."""
    runtime = agent.runtime
    config = runtime.node.config
    peer_pool, management_pool = _pool(config.p2p_threads), _pool(config.management_threads)
    socket_map: dict[int, object] = {}
    common = {
        "map": socket_map,
        "ident": "ledger-agent",
        "clear_untrusted_proxy_headers": True,
    }
    peer = create_server(
        agent.peer_app,
        sockets=listeners.peer,
        # waitress refuses a larger declared body itself, before reading it.
        max_request_body_size=runtime.max_message_size,
        _dispatcher=peer_pool,
        **common,
    )
    peer.channel_class = peer_channel(runtime.peer_service)  # its 413 in the peer protocol's terms
    management = create_server(
        agent.management_app,
        sockets=listeners.management,
        max_request_body_size=1024 * 1024,
        _dispatcher=management_pool,
        **common,
    )
    log.info(
        "%s serving peers on %s:%s (%d threads) and management on %s:%s (%d threads)",
        runtime.node.identity.name,
        *config.p2p_address,
        config.p2p_threads,
        *config.management_address,
        config.management_threads,
    )
    if freeze_gc:
        gc.collect()  # what is garbage now is freed, not frozen
        gc.freeze()
    if ready is not None:
        ready.set()
    try:
        peer.run()  # serves both listeners: they share the socket map
    finally:
        log.info("stopping: finishing requests and flows under way (up to %.0f s)", grace)
        for server in (peer, management):
            server.close()
        deadline = time.monotonic() + grace
        for pool in (peer_pool, management_pool):
            pool.shutdown(cancel_pending=True, timeout=max(0.0, deadline - time.monotonic()))
        agent.stop(grace)
        log.info("stopped")


def run_agent(config_path: Path) -> int:
    # Whatever the agent creates from here on (the database and its journals, logs, backups) is its
    # owner's only: the wrapped AES keys in the database protect nothing once others can read it.
    os.umask(PRIVATE_UMASK)
    config = load_node_config(config_path)
    # Refused here, a ConfigurationError is the one line `ledger-agent run` prints (exit 2): nothing has
    # been logged or started yet.
    listeners = bind_listeners(config)
    try:
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
            serve(agent, listeners, freeze_gc=True)
        finally:
            logs.close()
    finally:
        listeners.close()
    return 0
