"""LedgerSync's retry and timing faults (issue 16, item 10) among real runtimes on the in-process network:
a responder down for a while, a requester that died mid-session, a begin replayed across a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.clock import ManualClock, to_epoch_ms
from agent.errors import PeerRequestError, ReconciliationSessionLostError, StaleMessageError
from agent.ledger.identity import X500Name
from agent.ledgersync.protocol import TOPIC_BEGIN, TOPIC_END
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue
from agent.p2p.envelope import ERROR_TOPIC, parse_error_payload
from tests.ledgersync.conftest import A, B, Net
from tests.ledgersync.test_limits import DEADLINE, on_clock, run_in_simulated_time, scheduler_on
from tests.ledgersync.test_scheduler import wait_done

V = ReconciliationStatusValue


def responder_row(net: Net, responder: X500Name, requester: X500Name) -> ReconciliationStatus:
    sync = net[responder].ledgersync
    assert sync is not None
    row = sync.statuses.get(requester, False)
    assert row is not None
    return row


def test_a_responder_down_for_8_seconds_is_waited_for_within_the_retry_setting(net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")
    clock = ManualClock(datetime.now(UTC))
    on_clock(net, clock)
    scheduler = scheduler_on(net, A, clock, max_reconciliation_retry_attempt_timeout=timedelta(minutes=5))
    address = net.entry(B).p2p_address
    net.runtimes.pop(B).stop(5)  # B goes down
    net.network.detach(address)
    began = clock.now()
    waits: list[float] = []

    def on_wait(seconds: float) -> None:
        waits.append(seconds)
        if B not in net.runtimes and sum(waits) >= 8:
            net.start(B, clock)  # back about 8 s after it went down, on the same clock

    scheduler.schedule([B])
    status = run_in_simulated_time(net, A, clock, B, on_wait)
    assert status.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND, status.last_reconciliation_error
    assert B in net.runtimes and len(waits) >= 3
    assert timedelta(seconds=8) <= clock.now() - began < timedelta(minutes=1)


def test_a_responder_that_stays_down_fails_the_job_naming_it_and_the_time_spent(net: Net) -> None:
    clock = ManualClock(datetime.now(UTC))
    on_clock(net, clock)
    scheduler = scheduler_on(net, A, clock, max_reconciliation_retry_attempt_timeout=timedelta(minutes=1))
    net.network.detach(net.entry(B).p2p_address)
    began = clock.now()
    scheduler.schedule([B])
    status = run_in_simulated_time(net, A, clock, B, lambda _: None)
    spent = clock.now() - began
    assert status.last_reconciliation_status is V.FAILED
    error = status.last_reconciliation_error
    assert error.startswith(f"PeerUnreachableError: {B} unreachable after "), error
    assert f" over {spent}: " in error
    assert "another attempt would go over maxReconciliationRetryAttemptTimeout (0:01:00)" in error
    assert timedelta(seconds=30) < spent <= timedelta(minutes=1)


def test_a_requester_killed_mid_session_is_served_at_once_when_it_begins_again(net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")
    incoming = net.sync(B).incoming
    assert incoming is not None
    net[A].peers.request(B, TOPIC_BEGIN, {"salt": bytes(16), "size": 0, "at": to_epoch_ms(datetime.now(UTC))})
    old = incoming.session_of(responder_row(net, B, A).state_machine_run_id)
    assert old is not None and old.encoder is not None
    net.restart(A)  # A dies half way (no `end`) and comes back
    sync_a = net[A].ledgersync
    assert sync_a is not None and sync_a.ready.wait(DEADLINE)
    scheduler = net.scheduler(A)
    scheduler.schedule([B])
    status = wait_done(scheduler, B)[B]
    # Not ReconciliationAlreadyScheduledException naming A itself for the 2 minutes B kept the old one.
    assert status.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND, status.last_reconciliation_error
    assert old.cancelled.is_set() and not incoming.is_responding(A)
    row = responder_row(net, B, A)
    assert row.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND
    assert row.state_machine_run_id != old.state_machine_id
    # The old session's flow ended with it, rather than waiting out the idle timeout.
    handle = net[B].engine.handle(old.state_machine_id)
    assert handle is None or handle.wait_for(lambda h: h.done, DEADLINE)


def test_a_begin_replayed_after_the_responder_restarted_neither_locks_out_nor_ends_the_live_session(
    net: Net,
) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")
    address = net.entry(B).p2p_address
    payload = {"salt": bytes(16), "size": 0, "at": to_epoch_ms(datetime.now(UTC))}
    captured = net[A].authenticator.seal(B, TOPIC_BEGIN, payload)  # as an eavesdropper copies it
    service = net.network.service_at(address)
    assert service is not None and service.handle(captured)[0] == 200
    first = net.sync(B).incoming
    assert first is not None
    first.finish(A, [])
    net.restart(B)  # seconds later, well inside the 2-minute clock skew: its nonces are forgotten
    sync_b = net[B].ledgersync
    assert sync_b is not None and sync_b.ready.wait(DEADLINE)

    def replay() -> tuple[int, str, str]:
        service = net.network.service_at(address)
        assert service is not None
        status, body = service.handle(captured)
        envelope = net[A].authenticator.open(body)
        assert envelope.topic == ERROR_TOPIC
        error_type, message, _ = parse_error_payload(envelope.payload)
        return status, error_type, message

    # With no session open, the replay does not open one in A's name (that held A off for 2 minutes).
    status, error_type, message = replay()
    assert (status, error_type) == (400, StaleMessageError.__name__)
    assert "sealed before this receiver's start" in message
    assert not sync_b.incoming.is_responding(A)

    # With A's real session open, the replay does not end it.
    live = net[A].peers.request(
        B, TOPIC_BEGIN, {"salt": bytes(16), "size": 0, "at": to_epoch_ms(datetime.now(UTC))}
    )
    assert replay()[:2] == (400, StaleMessageError.__name__)
    assert sync_b.incoming.is_responding(A)
    assert net[A].peers.request(B, TOPIC_END, {"session": live["session"], "missing": None}) == {
        "received": 0
    }
    assert responder_row(net, B, A).last_reconciliation_status is V.DIFFERENCES_NOT_FOUND


def test_a_late_message_is_told_whether_its_session_ended_here_or_was_lost_in_a_restart(net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")

    def begin() -> bytes:
        reply = net[A].peers.request(
            B, TOPIC_BEGIN, {"salt": bytes(16), "size": 0, "at": to_epoch_ms(datetime.now(UTC))}
        )
        session: bytes = reply["session"]
        return session

    killed = begin()
    incoming = net.sync(B).incoming
    assert incoming is not None
    assert incoming.kill(responder_row(net, B, A).state_machine_run_id) == A
    with pytest.raises(PeerRequestError) as over:
        net[A].peers.request(B, TOPIC_END, {"session": killed, "missing": None})
    assert over.value.error_type == "ReconciliationError"
    assert "is over here: killed here by killFlow" in over.value.message  # so the requester stops

    lost = begin()
    net.restart(B)  # sessions live in memory
    sync_b = net[B].ledgersync
    assert sync_b is not None and sync_b.ready.wait(DEADLINE)
    with pytest.raises(PeerRequestError) as gone:
        net[A].peers.request(B, TOPIC_END, {"session": lost, "missing": None})
    assert gone.value.error_type == ReconciliationSessionLostError.__name__  # so the requester begins again
    assert "this node has restarted since it began" in gone.value.message
    assert "begin a new session" in gone.value.message
