"""The optional automatic finality recovery: node.conf's finalityRecovery, scans on a manual clock
(only notarised IN_FLIGHT transactions older than minimumAge, never an undo), its thread's lifecycle."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyhocon import ConfigFactory

from agent.clock import ManualClock
from agent.config import flatten
from agent.errors import ConfigurationError
from agent.finality.auto_recovery import AutoRecovery, AutoRecoverySettings, parse_auto_recovery_settings
from agent.flows.faults import InjectedFaultError
from agent.ledger.vault import TransactionStatus
from agent.network.bootstrap import DEFAULT_NOTARY, init_network
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.runtime import AgentRuntime, build_runtime
from tests.finality.test_recovery import A, B, C, Net, a_pays, fail_at, failed_flow, issue, no_faults

ON = AutoRecoverySettings(auto_recover=True, minimum_age_s=1800, scan_interval_s=600, jitter=0.2)


def settings(text: str) -> AutoRecoverySettings:
    return parse_auto_recovery_settings(flatten(ConfigFactory.parse_string(text)))


def test_off_by_default_and_each_key_checked_by_name() -> None:
    assert settings("") == AutoRecoverySettings(auto_recover=False)
    assert settings(
        "finalityRecovery { autoRecover = true, minimumAge = 1h, scanInterval = 30s, jitter = 0 }"
    ) == (AutoRecoverySettings(auto_recover=True, minimum_age_s=3600, scan_interval_s=30, jitter=0))
    bad = {
        "finalityRecovery.autoRecover = yes": ("finalityRecovery.autoRecover", "true or false"),
        "finalityRecovery.minimumAge = 0s": ("finalityRecovery.minimumAge", "from 1s to 30d"),
        "finalityRecovery.scanInterval = 2d": ("finalityRecovery.scanInterval", "from 1s to 1d"),
        "finalityRecovery.scanInterval = soon": ("finalityRecovery.scanInterval", "allowed"),
        "finalityRecovery.jitter = 0.9": ("finalityRecovery.jitter", "from 0 to 0.5"),
    }
    for text, (key, allowed) in bad.items():
        with pytest.raises(ConfigurationError, match=allowed) as raised:
            settings(text)
        assert key in str(raised.value)


@dataclass
class ClockedNet(Net):
    clock: ManualClock = field(default_factory=ManualClock)

    def start(self, name: object) -> AgentRuntime:
        entry = next(e for e in self.layout.nodes if e.name == name)
        runtime = build_runtime(open_node(entry.config, clock=self.clock), InProcessTransport(self.network))
        self.network.attach(entry.p2p_address, runtime.peer_service)
        self.runtimes[entry.name] = runtime
        return runtime


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[ClockedNet]:
    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY)
    # Now, on a clock that moves only when told (the certificates are valid from now).
    n = ClockedNet(layout, InProcessNetwork(), clock=ManualClock(datetime.now(UTC) + timedelta(minutes=1)))
    try:
        for entry in layout.nodes:
            n.start(entry.name)
        yield n
    finally:
        for runtime in n.runtimes.values():
            runtime.stop(5)


def test_scans_finalise_only_notarised_transactions_old_enough_and_never_undo(clocked: ClockedNet) -> None:
    net = clocked
    issue(net, (A, 100), (A, 50), (A, 20))
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    notarised = a_pays(net, C, 5, index=0)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(notarised)
    fail_at(net, A, "FinalityFlow", "AFTER_BROADCAST")
    not_notarised = a_pays(net, C, 6, index=1)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(not_notarised)
    conflicted = a_pays(net, C, 7, index=2)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(conflicted)
    no_faults(net)
    net[A].finality.finalise(a_pays(net, B, 8, index=2))  # spends conflicted's input

    at_a = AutoRecovery(net[A].recovery, ON, net.clock, rng=random.Random(7))
    at_c = AutoRecovery(net[C].recovery, ON, net.clock, rng=random.Random(8))
    assert at_a.poll() is None and at_c.poll() is None  # the first poll only schedules
    assert at_a.due is not None
    low, high = timedelta(seconds=600 * 0.8), timedelta(seconds=600 * 1.2)
    assert low <= at_a.due - net.clock.now() <= high
    # Ten minutes on: a scan may be due, but nothing is 30 minutes old yet.
    net.clock.advance(high)
    assert at_a.poll() == {} and at_c.poll() == {}
    assert net.status(A, notarised.id) is TransactionStatus.IN_FLIGHT
    assert at_a.poll() is None  # not due again yet
    # Past minimumAge. C's receiving flows still wait for A: running, so left alone until stopped.
    net.clock.advance(timedelta(minutes=30))
    assert at_c.poll() == {}
    net.clock.advance(high)
    assert net[C].engine.kill(notarised_key(net, C, notarised.id))
    # C (a peer) finalises its notarised copy; A (the initiator) its own.
    assert at_c.poll() == {notarised_key(net, C, notarised.id): True}
    assert net.status(C, notarised.id) is TransactionStatus.VERIFIED
    assert at_a.poll() == {failed_flow(net, A, notarised.id): True}
    assert net.status(A, notarised.id) is TransactionStatus.VERIFIED
    # Never an undo, never a transaction its initiator has not notarised: an operator's call.
    for tx in (not_notarised, conflicted):
        assert net.status(A, tx.id) is TransactionStatus.IN_FLIGHT
        assert net.status(C, tx.id) is TransactionStatus.IN_FLIGHT
    net.clock.advance(high)
    assert at_a.poll() == {} and at_c.poll() == {}
    assert (at_a.scans, at_c.scans) == (3, 4)


def notarised_key(net: Net, name: object, tx_id: object) -> str:
    return failed_flow(net, name, tx_id, "ReceiveFinalityFlow")  # type: ignore[arg-type]


def test_off_it_never_scans_and_on_its_thread_ends_with_the_engine(clocked: ClockedNet) -> None:
    net = clocked
    off = AutoRecovery(net[A].recovery, AutoRecoverySettings(), net.clock)
    off.start()
    assert not off.running and off.poll() is None and off.scans == 0
    assert net[A].auto_recovery is not None and not net[A].auto_recovery.running  # node.conf: off
    on = AutoRecovery(net[A].recovery, ON, net.clock, net[A].engine)
    on.start()
    assert on.running
    net[A].engine.shutdown(5)
    assert on._thread is not None
    on._thread.join(5)
    assert not on.running
    on.stop()
