"""MessageAuthenticator: the order of its checks, the nonce cache, thread safety."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from agent.clock import ManualClock
from agent.errors import (
    BadMessageSignatureError,
    IdentityError,
    MalformedMessageError,
    ReplayedMessageError,
    StaleMessageError,
    UnexpectedReplyError,
    UnknownSenderError,
    WrongRecipientError,
)
from agent.ledger.identity import Party
from agent.ledger.keys import KeyPair
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.envelope import NONCE_SIZE, parse_sealed, wire
from tests.p2p.conftest import PARTY_A, PARTY_B, PARTY_C, STRANGER, BootedNetwork, Member


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC))


def make(
    network: BootedNetwork, member: Member, clock: ManualClock, **kwargs: timedelta
) -> MessageAuthenticator:
    return MessageAuthenticator(member.party, member.key, network.network_map, clock, **kwargs)


def test_seal_and_open(network: BootedNetwork, clock: ManualClock) -> None:
    a = make(network, network.members[PARTY_A], clock)
    b = make(network, network.members[PARTY_B], clock)
    envelope, sealed = a.seal_envelope(PARTY_B, "topic", {"k": [1, b"2"]})
    opened = b.open(sealed, expect_sender=PARTY_A)
    assert opened == envelope
    assert (opened.sender, opened.recipient, opened.topic, opened.payload) == (
        PARTY_A,
        PARTY_B,
        "topic",
        {"k": [1, b"2"]},
    )
    # Millisecond precision: the signed timestamp is exactly what the receiver sees.
    assert opened.timestamp == datetime(2026, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert len(opened.nonce) == NONCE_SIZE and opened.in_reply_to is None


def test_nonces_are_fresh(network: BootedNetwork, clock: ManualClock) -> None:
    a = make(network, network.members[PARTY_A], clock)
    nonces = {a.seal_envelope(PARTY_B, "t", None)[0].nonce for _ in range(100)}
    assert len(nonces) == 100


def test_reply_checks(network: BootedNetwork, clock: ManualClock) -> None:
    a = make(network, network.members[PARTY_A], clock)
    b = make(network, network.members[PARTY_B], clock)
    request, _ = a.seal_envelope(PARTY_B, "t", None)
    reply = b.seal(PARTY_A, "reply", "ok", in_reply_to=request.nonce)
    with pytest.raises(UnexpectedReplyError, match="expected a reply from O=PartyC"):
        a.open(reply, expect_sender=PARTY_C)
    with pytest.raises(UnexpectedReplyError, match="does not answer our request"):
        a.open(reply, expect_reply_to=bytes(NONCE_SIZE))
    # Refusals do not burn the nonce: the right expectation still opens it.
    assert a.open(reply, expect_sender=PARTY_B, expect_reply_to=request.nonce).payload == "ok"


def test_checks_run_in_order(
    network: BootedNetwork, foreign: dict[object, Member], clock: ManualClock
) -> None:
    b = make(network, network.members[PARTY_B], clock)
    stranger = make(network, foreign[STRANGER], clock)
    a = make(network, network.members[PARTY_A], clock)
    # A stranger's message that is also to the wrong recipient and stale: the sender is named first.
    old = stranger.seal(PARTY_C, "t", None)
    clock.advance(timedelta(hours=1))
    with pytest.raises(UnknownSenderError, match="O=Stranger"):
        b.open(old)
    # A's stale message to C with a bad signature: the signature comes before recipient and age.
    sealed = parse_sealed(a.seal(PARTY_C, "t", None))
    clock.advance(timedelta(hours=1))
    with pytest.raises(BadMessageSignatureError):
        b.open(wire(sealed.body, bytes(64)))
    with pytest.raises(WrongRecipientError):
        b.open(wire(sealed.body, sealed.signature))
    with pytest.raises(MalformedMessageError):
        b.open(b"not cbor at all")


def test_window_boundaries(network: BootedNetwork, clock: ManualClock) -> None:
    window, skew = timedelta(minutes=10), timedelta(minutes=2)
    a = make(network, network.members[PARTY_A], clock)
    b = make(network, network.members[PARTY_B], clock, replay_window=window, max_clock_skew=skew)
    clock.advance(timedelta(microseconds=876544))  # whole milliseconds from here on
    sealed = a.seal(PARTY_B, "t", None)
    clock.advance(window)
    b.open(sealed)  # exactly as old as the window: still accepted, once
    with pytest.raises(ReplayedMessageError):
        b.open(sealed)
    late = a.seal(PARTY_B, "t", None)
    clock.advance(window + timedelta(milliseconds=1))
    with pytest.raises(StaleMessageError, match="older than the replay window"):
        b.open(late)
    ahead = make(network, network.members[PARTY_A], ManualClock(clock.now() + skew))
    b.open(ahead.seal(PARTY_B, "t", None))  # exactly the allowed skew ahead
    too_far = make(
        network, network.members[PARTY_A], ManualClock(clock.now() + skew + timedelta(milliseconds=1))
    )
    with pytest.raises(StaleMessageError, match="ahead of this clock"):
        b.open(too_far.seal(PARTY_B, "t", None))


def test_nonce_cache_expires_with_the_window(network: BootedNetwork, clock: ManualClock) -> None:
    a = make(network, network.members[PARTY_A], clock)
    b = make(network, network.members[PARTY_B], clock)
    for _ in range(20):
        b.open(a.seal(PARTY_B, "t", None))
    assert b.remembered_nonces == 20
    clock.advance(timedelta(minutes=10, milliseconds=1))
    b.open(a.seal(PARTY_B, "t", None))
    assert b.remembered_nonces == 1


def test_concurrent_replays_let_exactly_one_through(network: BootedNetwork, clock: ManualClock) -> None:
    a = make(network, network.members[PARTY_A], clock)
    b = make(network, network.members[PARTY_B], clock)
    sealed = a.seal(PARTY_B, "t", None)
    outcomes: list[str] = []
    start = threading.Barrier(16)

    def race() -> None:
        start.wait()
        try:
            b.open(sealed)
            outcomes.append("ok")
        except ReplayedMessageError:
            outcomes.append("replay")

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] + ["replay"] * 15


def test_key_must_match_identity(network: BootedNetwork, clock: ManualClock) -> None:
    a = network.members[PARTY_A]
    with pytest.raises(IdentityError, match="not its identity key"):
        MessageAuthenticator(Party(PARTY_A, KeyPair.generate().public), a.key, network.network_map, clock)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_clock_skew": timedelta(seconds=-1)}, {"replay_window": timedelta(0)}],
)
def test_bad_windows_refused(
    network: BootedNetwork, clock: ManualClock, kwargs: dict[str, timedelta]
) -> None:
    with pytest.raises(ValueError):
        make(network, network.members[PARTY_A], clock, **kwargs)


def test_seal_refuses_bad_arguments(network: BootedNetwork, clock: ManualClock) -> None:
    a = make(network, network.members[PARTY_A], clock)
    with pytest.raises(ValueError, match="topic"):
        a.seal(PARTY_B, "", None)
    with pytest.raises(ValueError, match="in_reply_to"):
        a.seal(PARTY_B, "t", None, in_reply_to=b"short")


def test_repr_shows_no_key(network: BootedNetwork, clock: ManualClock) -> None:
    member = network.members[PARTY_A]
    text = repr(make(network, member, clock))
    assert text == f"MessageAuthenticator({PARTY_A})"
    assert member.key.to_pem().decode() not in text


def test_a_message_sealed_shortly_before_a_restart_is_refused_after_it(
    network: BootedNetwork, clock: ManualClock
) -> None:
    a = make(network, network.members[PARTY_A], clock)
    b = make(network, network.members[PARTY_B], clock)
    sealed = a.seal(PARTY_B, "ledgersync.begin", {"salt": bytes(16), "size": 0})
    b.open(sealed)
    # B restarts a minute later, well inside the allowed clock skew: the nonces it saw are gone.
    restart = ManualClock(clock.now() + timedelta(minutes=1))
    b_again = make(network, network.members[PARTY_B], restart)
    with pytest.raises(StaleMessageError, match="sealed before this receiver's start") as refused:
        b_again.open(sealed)
    assert refused.value.before_start and refused.value.details()["before_start"] is True
    assert refused.value.sender == str(PARTY_A)
    # The same sender's fresh message is accepted, from the restart's first millisecond on.
    a_now = make(network, network.members[PARTY_A], restart)
    assert (
        b_again.open(a_now.seal(PARTY_B, "ledgersync.begin", {"salt": bytes(16), "size": 0})).sender
        == PARTY_A
    )
