"""The peer protocol suite: every test runs on the in-process adapter and on HTTP (see `harness`)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest

from agent.errors import (
    AgentError,
    AmountsNotConservedError,
    BadMessageSignatureError,
    ContractRejection,
    IdentityError,
    InvalidSignatureError,
    InvalidTransactionError,
    MessageTooLargeError,
    MissingSignatureError,
    NotaryConflictError,
    NotaryRejectionError,
    PeerRequestError,
    PeerUnreachableError,
    TransactionResolutionError,
    TransientTransportError,
    UnexpectedReplyError,
    UnknownContractError,
)
from agent.ledger.identity import Party
from agent.p2p.envelope import parse_sealed, wire
from agent.p2p.retry import RetryPolicy
from tests.p2p.conftest import (
    LIMIT,
    PARTY_A,
    PARTY_B,
    PARTY_C,
    STRANGER,
    CountingTransport,
    Member,
    Recorder,
    World,
)

TX = "A1" * 32
OTHER_TX = "B2" * 32


def serve_b(world: World, **handlers: Any) -> Recorder:
    """PartyB serving an echo handler (plus any others) on the harness; returns the echo's recorder."""
    echo = Recorder()
    world.serve(PARTY_B, world.service(world.member(PARTY_B), echo=echo, **handlers))
    return echo


def post(world: World, name: Any, body: bytes) -> tuple[int, bytes]:
    return world.harness.transport.post(world.addresses[name], body, 5.0)


def test_round_trip(world: World) -> None:
    echo = serve_b(world)
    payload = {"amount": 10, "blob": b"\x00\xff", "items": [1, "two", None, True], "nested": {"k": []}}
    reply = world.client(world.member(PARTY_A)).request(PARTY_B, "echo", payload)
    assert reply == {"sender": str(PARTY_A), "payload": payload}
    assert echo.calls == [(PARTY_A, payload)]


def test_concurrent_requests_all_answered(world: World) -> None:
    echo = serve_b(world)
    client = world.client(world.member(PARTY_A))
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            for i in range(5):
                results.append(client.request(PARTY_B, "echo", n * 100 + i)["payload"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == sorted(n * 100 + i for n in range(6) for i in range(5))
    assert len(echo.calls) == 30


def test_reply_from_another_party_is_refused(world: World) -> None:
    # PartyC's service answers at PartyB's address: its reply is well signed, but not by B.
    world.serve(PARTY_B, world.service(world.member(PARTY_C), echo=Recorder()))
    with pytest.raises(UnexpectedReplyError, match="expected a reply from O=PartyB"):
        world.client(world.member(PARTY_A)).request(PARTY_B, "echo", 1)


def test_reply_signed_with_another_key_in_the_peers_name_is_refused(world: World) -> None:
    c = world.member(PARTY_C)
    impostor = Member(Party(PARTY_B, c.key.public), c.key)
    world.serve(PARTY_B, world.service(impostor, echo=Recorder()))
    with pytest.raises(BadMessageSignatureError, match="O=PartyB"):
        world.client(world.member(PARTY_A)).request(PARTY_B, "echo", 1)


def test_forged_signature_refused(world: World) -> None:
    echo = serve_b(world)
    a = world.authenticator(world.member(PARTY_A))
    sealed = parse_sealed(a.seal(PARTY_B, "echo", {"amount": 1}))
    flipped = sealed.signature[:-1] + bytes([sealed.signature[-1] ^ 1])
    status, body = post(world, PARTY_B, wire(sealed.body, flipped))
    assert status == 400
    assert world.read_error(world.member(PARTY_A), status, body)[0] == "BadMessageSignatureError"

    # The signature of one body does not cover another.
    other = parse_sealed(a.seal(PARTY_B, "echo", {"amount": 1_000_000}))
    status, body = post(world, PARTY_B, wire(other.body, sealed.signature))
    assert (status, world.read_error(world.member(PARTY_A), status, body)[0]) == (
        400,
        "BadMessageSignatureError",
    )
    assert echo.calls == []


def test_impostor_using_a_members_name_is_refused(world: World, foreign: dict[Any, Member]) -> None:
    echo = serve_b(world)
    # Another network's PartyA: same name, its own CA and key, and it knows our map.
    impostor = world.client(foreign[PARTY_A])
    with pytest.raises(PeerRequestError) as caught:
        impostor.request(PARTY_B, "echo", 1)
    assert caught.value.error_type == "BadMessageSignatureError"
    assert echo.calls == []


def test_unknown_sender_refused(world: World, foreign: dict[Any, Member]) -> None:
    echo = serve_b(world)
    with pytest.raises(PeerRequestError) as caught:
        world.client(foreign[STRANGER]).request(PARTY_B, "echo", 1)
    assert caught.value.error_type == "UnknownSenderError"
    assert str(STRANGER) in caught.value.message
    assert caught.value.error_details == {"sender": str(STRANGER)}
    assert echo.calls == []


def test_replayed_message_refused_and_handled_once(world: World) -> None:
    echo = serve_b(world)
    sealed = world.authenticator(world.member(PARTY_A)).seal(PARTY_B, "echo", "pay once")
    assert post(world, PARTY_B, sealed)[0] == 200
    status, body = post(world, PARTY_B, sealed)
    error_type, message, _ = world.read_error(world.member(PARTY_A), status, body)
    assert (status, error_type) == (400, "ReplayedMessageError")
    assert "already received" in message
    assert len(echo.calls) == 1


def test_stale_message_refused(world: World) -> None:
    echo = serve_b(world)
    sealed = world.authenticator(world.member(PARTY_A)).seal(PARTY_B, "echo", 1)
    world.clock.advance(timedelta(minutes=10, seconds=1))
    status, body = post(world, PARTY_B, sealed)
    error_type, message, _ = world.read_error(world.member(PARTY_A), status, body)
    assert (status, error_type) == (400, "StaleMessageError")
    assert "older than the replay window of 0:10:00" in message
    assert echo.calls == []


def test_message_from_the_future_refused(world: World) -> None:
    echo = serve_b(world)
    from agent.clock import ManualClock

    ahead = ManualClock(world.clock.now() + timedelta(minutes=3))
    sealed = world.authenticator(world.member(PARTY_A), clock=ahead).seal(PARTY_B, "echo", 1)
    status, body = post(world, PARTY_B, sealed)
    error_type, message, _ = world.read_error(world.member(PARTY_A), status, body)
    assert (status, error_type) == (400, "StaleMessageError")
    assert "beyond the allowed skew of 0:02:00" in message
    assert echo.calls == []


def test_replay_from_before_a_restart_refused(world: World) -> None:
    first = serve_b(world)
    sealed = world.authenticator(world.member(PARTY_A)).seal(PARTY_B, "echo", 1)
    assert post(world, PARTY_B, sealed)[0] == 200
    # B restarts five minutes later: its nonce cache is empty, the message still inside the window.
    world.clock.advance(timedelta(minutes=5))
    second = serve_b(world)
    status, body = post(world, PARTY_B, sealed)
    error_type, message, _ = world.read_error(world.member(PARTY_A), status, body)
    assert (status, error_type) == (400, "StaleMessageError")
    assert "before a restart" in message
    assert (len(first.calls), len(second.calls)) == (1, 0)


def test_replay_from_shortly_before_a_restart_refused(world: World) -> None:
    first = serve_b(world)
    sealed = world.authenticator(world.member(PARTY_A)).seal(PARTY_B, "echo", 1)
    assert post(world, PARTY_B, sealed)[0] == 200
    # B restarts 30 s later, inside the allowed clock skew of 2 minutes.
    world.clock.advance(timedelta(seconds=30))
    second = serve_b(world)
    status, body = post(world, PARTY_B, sealed)
    error_type, message, details = world.read_error(world.member(PARTY_A), status, body)
    assert (status, error_type) == (400, "StaleMessageError")
    assert "sealed before this receiver's start" in message and details["before_start"] is True
    assert (len(first.calls), len(second.calls)) == (1, 0)
    # A fresh request of A's is served.
    assert world.client(world.member(PARTY_A)).request(PARTY_B, "echo", 2)["payload"] == 2
    assert len(second.calls) == 1


def test_a_sender_whose_clock_lags_a_restarted_receiver_is_served_once_its_clock_passes_the_start(
    world: World,
) -> None:
    from agent.clock import ManualClock
    from agent.p2p.client import PeerClient

    echo = serve_b(world)  # B starts now, by its clock
    lagging = ManualClock(world.clock.now() - timedelta(seconds=1))

    def sleep(seconds: float) -> None:  # time passes for both clocks alike
        world.clock.sleep(seconds)
        lagging.sleep(seconds)

    transport = CountingTransport(world.harness.transport)
    retry = RetryPolicy(max_attempts=6, base_delay=0.2, sleep=sleep)
    client = PeerClient(
        world.authenticator(world.member(PARTY_A), clock=lagging), world.network_map, transport, retry
    )
    assert client.request(PARTY_B, "echo", 7)["payload"] == 7
    assert len(transport.bodies) > 1 and len(echo.calls) == 1  # refused, sealed again, served once

    # A lag beyond the retries' reach: the refusal itself, by name, naming the sender and the start.
    far = ManualClock(world.clock.now() - timedelta(minutes=1))

    def sleep_far(seconds: float) -> None:
        world.clock.sleep(seconds)
        far.sleep(seconds)

    serve_b(world)  # B restarted again: its start is now
    stuck = PeerClient(
        world.authenticator(world.member(PARTY_A), clock=far),
        world.network_map,
        world.harness.transport,
        RetryPolicy(max_attempts=3, base_delay=0.2, sleep=sleep_far),
    )
    with pytest.raises(PeerRequestError, match="StaleMessageError") as refused:
        stuck.request(PARTY_B, "echo", 8)
    assert refused.value.error_details["before_start"] is True
    assert str(PARTY_A) in str(refused.value)


def test_message_to_another_recipient_refused(world: World) -> None:
    echo = serve_b(world)
    sealed = world.authenticator(world.member(PARTY_A)).seal(PARTY_C, "echo", 1)
    status, body = post(world, PARTY_B, sealed)
    error_type, _, details = world.read_error(world.member(PARTY_A), status, body)
    assert (status, error_type) == (400, "WrongRecipientError")
    assert details == {"sender": str(PARTY_A), "recipient": str(PARTY_C), "me": str(PARTY_B)}
    assert echo.calls == []


def test_oversize_message_refused_before_the_handler(world: World) -> None:
    echo = serve_b(world)
    sealed = world.authenticator(world.member(PARTY_A)).seal(PARTY_B, "echo", b"x" * LIMIT)
    status, body = post(world, PARTY_B, sealed)
    error_type, message, details = world.read_error(world.member(PARTY_A), status, body)
    assert (status, error_type) == (413, "MessageTooLargeError")
    assert details == {"size": len(sealed), "limit": LIMIT, "at_least": False}
    assert f"{len(sealed)} bytes exceeds the network's maxMessageSize of {LIMIT}" in message
    assert echo.calls == []


def test_oversize_request_not_sent_by_the_client(world: World) -> None:
    serve_b(world)
    counting = CountingTransport(world.harness.transport)
    with pytest.raises(MessageTooLargeError):
        world.client(world.member(PARTY_A), transport=counting).request(PARTY_B, "echo", b"x" * LIMIT)
    assert counting.bodies == []


def test_unknown_topic(world: World) -> None:
    serve_b(world)
    with pytest.raises(PeerRequestError) as caught:
        world.client(world.member(PARTY_A)).request(PARTY_B, "no-such-topic", 1)
    assert caught.value.error_type == "UnknownTopicError"
    assert caught.value.error_details == {"topic": "no-such-topic"}
    assert caught.value.peer == str(PARTY_B)


def test_notary_conflict_arrives_with_its_conflicts(world: World) -> None:
    conflicts = {f"{TX}:0": OTHER_TX, f"{TX}:1": OTHER_TX}

    def notarise(sender: Any, payload: Any) -> Any:
        raise NotaryConflictError(TX, conflicts)

    serve_b(world, notarise=notarise)
    with pytest.raises(NotaryConflictError) as caught:
        world.client(world.member(PARTY_A)).request(PARTY_B, "notarise", {"tx": TX})
    assert (caught.value.tx_id, caught.value.conflicts) == (TX, conflicts)
    assert str(caught.value) == str(NotaryConflictError(TX, conflicts))
    cause = caught.value.__cause__
    assert isinstance(cause, PeerRequestError) and cause.peer == str(PARTY_B)


@pytest.mark.parametrize(
    "error",
    [
        NotaryRejectionError(TX, "not the notary of this transaction"),
        InvalidTransactionError(TX, "an input appears twice"),
        InvalidSignatureError(TX, "ab" * 32),
        MissingSignatureError(TX, ["cd" * 32, "ef" * 32]),
        UnknownContractError(TX, "com.example.Unknown"),
        ContractRejection(TX, "FungibleToken", "issuer did not sign"),
        AmountsNotConservedError(TX, "FungibleToken", "GBP: 10 in, 9 out"),
        TransactionResolutionError(TX, [OTHER_TX]),
    ],
    ids=lambda error: type(error).__name__,
)
def test_domain_errors_are_rebuilt(world: World, error: AgentError) -> None:
    def refuse(sender: Any, payload: Any) -> Any:
        raise error

    serve_b(world, refuse=refuse)
    with pytest.raises(type(error)) as caught:
        world.client(world.member(PARTY_A)).request(PARTY_B, "refuse", None)
    assert type(caught.value) is type(error)
    assert str(caught.value) == str(error)
    assert vars(caught.value) == vars(error)


def test_other_agent_errors_arrive_as_peer_request_errors(world: World) -> None:
    def refuse(sender: Any, payload: Any) -> Any:
        raise IdentityError("you may not ask that")

    serve_b(world, refuse=refuse)
    with pytest.raises(PeerRequestError) as caught:
        world.client(world.member(PARTY_A)).request(PARTY_B, "refuse", None)
    assert (caught.value.error_type, caught.value.message) == ("IdentityError", "you may not ask that")


def test_internal_errors_hide_their_details(world: World, caplog: pytest.LogCaptureFixture) -> None:
    def crash(sender: Any, payload: Any) -> Any:
        raise RuntimeError("password=hunter2 in /srv/secret.py")

    serve_b(world, crash=crash, unplain=lambda sender, payload: object())
    client = world.client(world.member(PARTY_A))
    with caplog.at_level(logging.ERROR, logger="agent.p2p"):
        for topic in ("crash", "unplain"):
            with pytest.raises(PeerRequestError) as caught:
                client.request(PARTY_B, topic, None)
            error = caught.value
            assert (error.error_type, error.message, error.error_details) == (
                "InternalError",
                "internal error",
                {},
            )
            assert "hunter2" not in str(error) and "Traceback" not in str(error)
    # The details stay in the peer's own log.
    assert "hunter2" in caplog.text


def test_connection_refused_is_retried_then_unreachable(world: World) -> None:
    world.addresses[PARTY_B] = world.harness.down_address()
    slept: list[float] = []
    retry = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=0.3, sleep=slept.append)
    with pytest.raises(PeerUnreachableError) as caught:
        world.client(world.member(PARTY_A), retry=retry).request(PARTY_B, "echo", 1)
    assert caught.value.attempts == 4
    assert isinstance(caught.value.last_error, TransientTransportError)
    assert len(slept) == 3 and all(0 <= delay <= 0.3 for delay in slept)
    assert str(PARTY_B) in str(caught.value)


def test_transient_failure_is_retried_with_a_freshly_sealed_message(world: World) -> None:
    echo = serve_b(world)
    flaky = CountingTransport(world.harness.transport, fail_first=2)
    reply = world.client(world.member(PARTY_A), transport=flaky).request(PARTY_B, "echo", "once")
    assert reply["payload"] == "once"
    nonces = {parse_sealed(body).envelope.nonce for body in flaky.bodies}
    assert len(flaky.bodies) == 3 and len(nonces) == 3
    assert len(echo.calls) == 1


@pytest.mark.parametrize("topic", ["no-such-topic", "refuse"])
def test_a_refusal_is_not_retried(world: World, topic: str) -> None:
    def refuse(sender: Any, payload: Any) -> Any:
        raise NotaryRejectionError(TX, "no")

    serve_b(world, refuse=refuse)
    counting = CountingTransport(world.harness.transport)
    with pytest.raises((PeerRequestError, NotaryRejectionError)):
        world.client(world.member(PARTY_A), transport=counting).request(PARTY_B, topic, 1)
    assert len(counting.bodies) == 1


def test_peer_not_in_the_map(world: World) -> None:
    with pytest.raises(IdentityError, match="O=Stranger"):
        world.client(world.member(PARTY_A)).request(STRANGER, "echo", 1)
