"""The IN_FLIGHT age metrics and the automatic finality recovery on real agent processes
(docs/finality-recovery.md, "Monitoring finality" and "Automatic recovery").

One network for the module (PartyB issues; the notary signs). PartyA's finality fails after
notarisation (`fail` at BEFORE_SEND_SIGNATURE); PartyC runs the automatic recovery from the start and
its own finality fails before notarisation (`fail` at AFTER_BROADCAST). Each case trades in a currency
of its own.

- A's /metrics, scraped and parsed with prometheus_client, shows its IN_FLIGHT payment: the oldest age
  above 0 and growing, one transaction in every cumulative bucket; both go back to 0 once an operator
  recovers it.
- A restarted with the automatic recovery finalises its notarised payment by itself: every party
  VERIFIED, nothing IN_FLIGHT, and A spends its change.
- C's payment, never notarised, is left alone: still IN_FLIGHT after scans that
  (ledgeragent_finality_auto_recovery_scans_total says) began once it was older than minimumAge.

Every process is stopped by its PID (AgentProcess.stop); every outcome is polled with a deadline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent.client.launcher import AgentProcessError
from agent.finality.ages import AGE_BUCKETS, ALL_AGES
from mbeans import metrics as m
from tests.agent_processes import (
    configure,
    flows_of,
    holdings,
    node_of,
    notarised,
    recover,
    restart,
    scrape,
    status,
    value,
)
from tests.test_processes import Network, _start, _wait_until

pytestmark = pytest.mark.slow

A, B, C = "O=PartyA, L=London, C=GB", "O=PartyB, L=New York, C=US", "O=PartyC, L=Paris, C=FR"
AGES = [label for label, _ in AGE_BUCKETS] + [ALL_AGES]
AFTER_NOTARISATION = "FinalityFlow.BEFORE_SEND_SIGNATURE=fail"
BEFORE_NOTARISATION = "FinalityFlow.AFTER_BROADCAST=fail"
MINIMUM_AGE_S = 2
AUTO_RECOVERY = (
    f"finalityRecovery {{ autoRecover = true, minimumAge = {MINIMUM_AGE_S}s, scanInterval = 1s, jitter = 0 }}",
)
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    started = _start(tmp_path_factory.mktemp("auto-recovery"), {}, None)
    configure(started, A, [AFTER_NOTARISATION])
    configure(started, C, [BEFORE_NOTARISATION], AUTO_RECOVERY)
    try:
        for proc in started.processes.values():
            proc.start()
        for proc in started.processes.values():
            proc.wait_ready()
        yield started
    finally:
        for proc in started.processes.values():
            proc.stop()


def failed_payment(net: Network, payer: str, payee: str, currency: str) -> dict[str, Any]:
    """B issues 100 to the payer, who pays the payee 10; its FinalityFlow fails (the payer's fault).
    That flow, FAILED."""
    net.client(B).issue([(payer, 100)], currency)
    before = {f["flowId"] for f in net.client(payer).flows(status="FAILED", flowName="FinalityFlow")}
    with contextlib.suppress(httpx.HTTPError, AgentProcessError):  # it failed under the call
        net.client(payer).pay(payee, 10, currency, B, wait=1)
    _wait_until(
        lambda: bool(new_failures(net, payer, before)),
        DEADLINE_S,
        lambda: net.client(payer).flows(flowName="FinalityFlow"),
    )
    (failed,) = new_failures(net, payer, before)
    assert "InjectedFaultError" in failed["error"], failed
    return failed


def new_failures(net: Network, name: str, before: set[str]) -> list[dict[str, Any]]:
    flows = net.client(name).flows(status="FAILED", flowName="FinalityFlow")
    return [f for f in flows if f["flowId"] not in before]


def in_flight_ages(net: Network, name: str) -> tuple[float | None, dict[str, float | None]]:
    """The oldest IN_FLIGHT age and the count per age bucket, from the node's /metrics."""
    samples = scrape(node_of(net, name))
    by_age = {age: value(samples, m.IN_FLIGHT_BY_AGE, age=age) for age in AGES}
    return value(samples, m.IN_FLIGHT_OLDEST_AGE), by_age


def scans(net: Network, name: str) -> float:
    begun = value(scrape(node_of(net, name)), m.FINALITY_AUTO_RECOVERY_SCANS)
    assert begun is not None
    return begun


def test_the_in_flight_age_metrics_show_a_payment_failed_after_notarisation_until_it_is_recovered(
    net: Network,
) -> None:
    assert in_flight_ages(net, A) == (0, dict.fromkeys(AGES, 0))
    failed = failed_payment(net, A, C, "M01")
    tx = failed["txId"]
    assert (status(net, A, tx), notarised(net, tx)) == ("IN_FLIGHT", True)

    oldest, by_age = in_flight_ages(net, A)
    assert oldest is not None and oldest > 0
    assert by_age == dict.fromkeys(AGES, 1)  # under a minute old: in the 1m bucket and every larger one
    _wait_until(
        lambda: (in_flight_ages(net, A)[0] or 0) > oldest,
        DEADLINE_S,
        lambda: in_flight_ages(net, A),
    )
    assert scans(net, A) == 0  # A's automatic recovery is off: only the operator recovers

    answer = recover(net, A, "recoverFinalityFlow", id=failed["flowId"])
    assert answer["recovered"] is True, answer
    assert in_flight_ages(net, A) == (0, dict.fromkeys(AGES, 0))
    assert (status(net, A, tx), status(net, C, tx)) == ("VERIFIED", "VERIFIED")


def test_the_automatic_recovery_finalises_a_notarised_payment_by_itself(net: Network) -> None:
    restart(net, A, [AFTER_NOTARISATION], AUTO_RECOVERY)
    failed = failed_payment(net, A, C, "M02")
    tx = failed["txId"]
    assert notarised(net, tx)
    _wait_until(
        lambda: (status(net, A, tx), status(net, C, tx)) == ("VERIFIED", "VERIFIED"),
        DEADLINE_S,
        lambda: {n: flows_of(net, n, tx) for n in (A, C)},
    )
    # Nobody called a recovery: A's own scan did, with the recovery flow.
    (recovery,) = flows_of(net, A, tx, flowName="FinalityRecoveryFlow")
    assert (recovery["status"], recovery["step"]) == ("COMPLETED", "FINALISED")
    assert not [e for e in net.client(A).audit() if e["target"] in (tx, failed["flowId"])]
    assert "automatic finality recovery: {" in net.processes[A].log_tail(200)
    for name in (A, B, C):
        assert net.client(name).vault()["transactions"]["IN_FLIGHT"] == 0, name
    assert in_flight_ages(net, A) == (0, dict.fromkeys(AGES, 0))
    assert (holdings(net, A, "M02"), holdings(net, C, "M02")) == ([90], [10])

    restart(net, A, [], AUTO_RECOVERY)  # A's fault is armed for every new FinalityFlow
    spent = net.client(A).pay(C, 90, "M02", B)
    assert (status(net, A, spent), status(net, C, spent)) == ("VERIFIED", "VERIFIED")
    assert (holdings(net, A, "M02"), holdings(net, C, "M02")) == ([], [100])


def test_the_automatic_recovery_leaves_a_payment_never_notarised_to_an_operator(net: Network) -> None:
    failed = failed_payment(net, C, A, "M03")
    tx = failed["txId"]
    assert (status(net, C, tx), notarised(net, tx)) == ("IN_FLIGHT", False)
    assert net.client(C).vault()["transactions"]["IN_FLIGHT"] == 1  # so the oldest is this one
    _wait_until(
        lambda: (in_flight_ages(net, C)[0] or 0) >= MINIMUM_AGE_S,
        DEADLINE_S,
        lambda: in_flight_ages(net, C),
    )
    # Scans run one after another: three more than begun now are two that began and ended after it
    # was old enough.
    begun = scans(net, C)
    _wait_until(lambda: scans(net, C) >= begun + 3, DEADLINE_S, lambda: scans(net, C))

    assert (status(net, C, tx), notarised(net, tx)) == ("IN_FLIGHT", False)
    assert flows_of(net, C, tx, flowName="FinalityRecoveryFlow") == []
    assert f"automatic finality recovery leaves {tx} to an operator: NOT_NOTARISED" in (
        net.processes[C].log_tail(400)
    )
    oldest, by_age = in_flight_ages(net, C)
    assert oldest is not None and oldest >= MINIMUM_AGE_S and by_age == dict.fromkeys(AGES, 1)
