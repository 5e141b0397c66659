"""Reconciliation sessions among real runtimes on the in-process network, with a node restored from backup."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from agent.errors import (
    CannotReconcileWithSelfException,
    LedgerGraphNotReadyException,
    PeerRequestError,
    ReconciliationCodecError,
)
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync import protocol
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.consistency import ConsistencyReport
from agent.ledgersync.idset import IdSet
from agent.ledgersync.protocol import (
    TOPIC_BEGIN,
    TOPIC_IDS,
    TOPIC_SYMBOLS,
    LedgerSyncService,
    ReconciliationResult,
)
from agent.ledgersync.riblt import decode_batch, encode_batch
from agent.ledgersync.riblt_numpy import FastEncoder
from tests.ledgersync.conftest import A, B, C, Net


def test_identical_ledgers_settle_in_one_symbol_under_200_bytes(net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP", observers=(C,))
    net[A].tokens.pay(B, 10, "GBP", A)
    for peer in (B, C):
        result = net.sync(A).reconcile(peer)
        assert result.missing_here == set() and result.missing_there == set()
        first = result.messages[0]
        assert first.topic == TOPIC_BEGIN
        assert first.sent + first.received < 200
        assert not result.used_id_list
        assert [m.topic for m in result.messages] == [TOPIC_BEGIN, "ledgersync.end"]


def test_the_restored_node_finds_what_it_lost_with_each_peer(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored
    with_b = net.sync(A).reconcile(B)
    assert with_b.missing_here == net.expected(A, B) == {t["t4"], t["t5"]}
    assert with_b.missing_there == set()
    with_c = net.sync(A).reconcile(C)
    assert with_c.missing_here == net.expected(A, C) == {t["t4"]}
    for result in (with_b, with_c):
        assert t["t3"] not in result.missing_here  # B and C only: never A's to learn
        assert not result.used_id_list and result.exchanges == 2  # begin (decoded), end
        assert result.bytes_received < 64 * 41 + 200


def test_the_requester_computes_ahead_only_until_the_reply_comes(
    restored: tuple[Net, dict[str, SecureHash]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A walk ahead slower than the responder: it must be told the reply came, and then the ids it
    # did not reach (here: none) are walked for the batch alone; the session decodes as ever.
    net, t = restored
    real = FastEncoder.compute_ahead
    told: list[bool] = []

    def slow(self: FastEncoder, n: int, stop: threading.Event | None = None) -> None:
        assert stop is not None
        told.append(stop.wait(30))
        real(self, n, stop)

    monkeypatch.setattr(FastEncoder, "compute_ahead", slow)
    with_b = net.sync(A).reconcile(B)
    assert told == [True]
    assert with_b.missing_here == {t["t4"], t["t5"]} and with_b.exchanges == 2


def test_the_responder_encodes_only_the_requesters_entitlement(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored
    for peer in (B, C):
        graph = net.sync(peer).graph
        offered = {SecureHash(i) for i in net.sync(peer).pair_set(A)}
        involved = set(graph.ids(graph.involving(str(A)).tolist()))
        assert offered <= involved | graph.backchain(involved)
        assert t["t3"] not in offered
    b_for_c = {SecureHash(i) for i in net.sync(B).pair_set(C)}
    assert t["t3"] in b_for_c  # it is in the graph, just not A's


def test_both_directions_delivers_the_other_sides_difference(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored
    seen: list[tuple[X500Name, set[SecureHash]]] = []
    net.sync(A).on_peer_difference = lambda party, ids: seen.append((party, ids))
    result = net.sync(B).reconcile(A, both_directions=True)
    assert result.missing_here == set()
    assert result.missing_there == {t["t4"], t["t5"]}
    assert net.sync(A).peer_differences[B] == {t["t4"], t["t5"]}
    assert seen == [(B, {t["t4"], t["t5"]})]


def test_the_id_list_is_the_fallback_when_symbols_do_not_decode_in_time(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored
    real = net[A].peers

    class FirstSymbolOnly:
        """Keeps one symbol of the first batch: one exchange cannot decode two differences."""

        def request(self, peer: X500Name, topic: str, payload: Any, *, timeout: float = 30.0) -> Any:
            reply = real.request(peer, topic, payload, timeout=timeout)
            if topic == TOPIC_BEGIN:
                start, symbols = decode_batch(reply["batch"])
                reply["batch"] = encode_batch(symbols[:1], start)
            return reply

    ours = net.sync(A)
    service = LedgerSyncService(
        ours.identity, ours.graph, ours.scans, FirstSymbolOnly(),
        LedgerSyncConfig(max_number_of_ibf_filter_flows=1), ours.network_map, ours.clock,
    )  # fmt: skip
    result = service.reconcile(B)
    assert result.used_id_list
    assert result.missing_here == {t["t4"], t["t5"]} and result.missing_there == set()
    assert [m.topic for m in result.messages] == [TOPIC_BEGIN, TOPIC_IDS, "ledgersync.end"]


def _tampered_list(net: Net, tamper: Any) -> LedgerSyncService:
    """A's service, its id-list replies from B passed through tamper(reply) first."""
    real = net[A].peers

    class Tampering:
        def request(self, peer: X500Name, topic: str, payload: Any, *, timeout: float = 30.0) -> Any:
            reply = real.request(peer, topic, payload, timeout=timeout)
            return tamper(reply) if topic == TOPIC_IDS else reply

    ours = net.sync(A)
    return LedgerSyncService(
        ours.identity, ours.graph, ours.scans, Tampering(), LedgerSyncConfig(), ours.network_map, ours.clock
    )


def test_an_id_list_in_any_order_gives_the_same_difference(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored

    def reversed_page(reply: dict[str, Any]) -> dict[str, Any]:
        ids = [reply["ids"][o : o + 32] for o in range(0, len(reply["ids"]), 32)]
        return {**reply, "ids": b"".join(reversed(ids))}

    result = _tampered_list(net, lambda r: r).reconcile(B, method="list", both_directions=True)
    tampered = _tampered_list(net, reversed_page).reconcile(B, method="list", both_directions=True)
    assert tampered.missing_here == result.missing_here == {t["t4"], t["t5"]}
    assert tampered.missing_there == result.missing_there


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda r: {**r, "ids": r["ids"] + r["ids"]}, "more than the .* ids the responder announced"),
        (lambda r: {**r, "ids": r["ids"] + b"x"}, "must be concatenated 32-byte ids"),
        (lambda r: {**r, "next": 0}, "must follow offset 0"),
    ],
)
def test_a_malformed_id_list_is_a_named_codec_error(
    restored: tuple[Net, dict[str, SecureHash]], tamper: Any, message: str
) -> None:
    net, _ = restored
    with pytest.raises(ReconciliationCodecError, match=message):
        _tampered_list(net, tamper).reconcile(B, method="list")


def test_reconciling_with_itself_is_refused_at_both_ends(net: Net) -> None:
    with pytest.raises(CannotReconcileWithSelfException):
        net.sync(A).reconcile(A)
    with pytest.raises(CannotReconcileWithSelfException):
        net[A].peers.request(A, TOPIC_BEGIN, {"salt": bytes(16), "size": 0})


def test_malformed_symbols_end_the_session_with_a_codec_error(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, _ = restored
    real = net[A].peers

    class Truncating:
        def request(self, peer: X500Name, topic: str, payload: Any, *, timeout: float = 30.0) -> Any:
            reply = real.request(peer, topic, payload, timeout=timeout)
            if topic == TOPIC_BEGIN:
                reply["batch"] = reply["batch"][:-5]
            return reply

    ours = net.sync(A)
    service = LedgerSyncService(
        ours.identity, ours.graph, ours.scans, Truncating(), ours.config, ours.network_map, ours.clock
    )
    with pytest.raises(ReconciliationCodecError, match="truncated"):
        service.reconcile(B)


def test_a_responder_refuses_garbage_by_name_and_keeps_serving(net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")
    for payload in ({"salt": b"short", "size": 1}, {"salt": bytes(16), "size": -1}, ["not", "a", "map"]):
        with pytest.raises(PeerRequestError) as err:
            net[A].peers.request(B, TOPIC_BEGIN, payload)
        assert err.value.error_type == "ReconciliationCodecError"
    with pytest.raises(PeerRequestError) as err:
        net[A].peers.request(B, TOPIC_SYMBOLS, {"session": bytes(16), "start": 0, "count": 1})
    # A session B never had: to B, as one it lost in a restart (begin a new one).
    assert err.value.error_type == "ReconciliationSessionLostError"
    result = net.sync(A).reconcile(B)
    assert result.missing_here == set()


def test_a_responder_whose_ledger_is_not_ready_refuses(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = ConsistencyReport(True, False, ["transaction X: input X(0) refers to nothing"], 1)
    monkeypatch.setattr(net.sync(B), "report", lambda: broken)
    with pytest.raises(LedgerGraphNotReadyException, match="not self-consistent"):
        net.sync(A).reconcile(B)


def test_result_counts_add_up(restored: tuple[Net, dict[str, SecureHash]]) -> None:
    net, _ = restored
    result: ReconciliationResult = net.sync(A).reconcile(B)
    assert result.bytes_sent == sum(m.sent for m in result.messages)
    assert result.bytes_received == sum(m.received for m in result.messages)
    assert result.exchanges == len(result.messages)


def test_replies_are_capped_to_fit_and_each_counts_as_an_exchange(
    restored: tuple[Net, dict[str, SecureHash]], monkeypatch: pytest.MonkeyPatch
) -> None:
    net, t = restored
    monkeypatch.setattr(protocol, "symbols_per_reply", lambda max_message_size: 1)
    result = net.sync(A).reconcile(B)
    assert result.missing_here == {t["t4"], t["t5"]} and result.missing_there == set()
    symbols = [m for m in result.messages if m.topic in (TOPIC_BEGIN, TOPIC_SYMBOLS)]
    assert all(m.received <= 60 + 41 for m in symbols)  # one symbol each, whatever was asked
    assert len(symbols) <= LedgerSyncConfig().max_number_of_ibf_filter_flows


def test_a_first_batch_larger_than_a_reply_follows_in_more_exchanges(
    restored: tuple[Net, dict[str, SecureHash]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # MAX_BATCH_BYTES bounds a batch whatever maxMessageSize allows (100 symbols here). The first
    # batch planned for 200 differences (314 symbols) then takes 4 replies: the requester asks for
    # the rest of it, not a quarter more at a time, which would spend the bound of 5 exchanges.
    net, _ = restored
    rng = random.Random(7)
    theirs = IdSet.of(rng.randbytes(32) for _ in range(3000))
    lost = set(list(theirs)[::15])  # 200 of them
    mine = IdSet.of(i for i in theirs if i not in lost)
    monkeypatch.setattr(net.sync(A), "pair_set", lambda party: mine)
    monkeypatch.setattr(net.sync(B), "pair_set", lambda party: theirs)
    monkeypatch.setattr(protocol, "MAX_BATCH_BYTES", protocol.HEADER_SIZE + 100 * protocol.SYMBOL_SIZE)
    result = net.sync(A).reconcile(B)
    assert set(result.missing_here) == {SecureHash(i) for i in lost} and not result.used_id_list
    symbols = [m for m in result.messages if m.topic in (TOPIC_BEGIN, TOPIC_SYMBOLS)]
    # 3 or 4 replies carry the planned batch; in about 1 session in 100 (the salt is random) that
    # batch does not decode and one more exchange, of a quarter more, follows (docs/ledgersync.md).
    assert all(m.received <= 60 + 100 * 41 for m in symbols) and 3 <= len(symbols) <= 5


def test_symbols_and_ids_per_reply_fit_the_message_size() -> None:
    for size in (2_000, 10 * 1024 * 1024):
        assert protocol.ENVELOPE_RESERVE + 9 + protocol.symbols_per_reply(size) * 41 <= size
        assert 9 + protocol.symbols_per_reply(size) * 41 <= protocol.MAX_BATCH_BYTES
        assert protocol.ENVELOPE_RESERVE + protocol.ids_per_reply(size) * 32 <= size
