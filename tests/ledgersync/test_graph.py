"""The ledger graph (ids, back-chain edges, parties) and the self-consistency check."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.errors import LedgerGraphNotReadyException, StoreError
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.token import issue, move
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import StateStatus, StatesToRecord, TransactionStatus
from agent.ledgersync.consistency import check_consistency, require_ready
from agent.ledgersync.graph import LedgerGraph
from agent.ledgersync.states import read_states
from agent.store.ledger_store import LedgerStore
from bench.fixture import fixture_store_keys, load
from tests.conftest import Actor

AUDITOR = X500Name.parse("O=Auditor LLP, L=Paris, C=FR")
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Ledger:
    store: LedgerStore
    issued: SignedTransaction  # alice issues 100 to alice, 50 to bob
    paid: SignedTransaction  # alice pays bob 30 from issued(0), change 70 to alice; sent to the auditor
    merged: SignedTransaction  # bob pays charlie 80 from issued(1) and paid(0)


@pytest.fixture
def ledger(tmp_path: Path, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor) -> Iterator[Ledger]:
    store = LedgerStore(f"sqlite:///{tmp_path / 'node.db'}", our_keys=[alice.party.owning_key])
    notary = notary_actor.party
    issued = issue(alice.party, notary, [(alice.party, 100), (bob.party, 50)], "GBP").sign([alice.key])
    paid = move([issued.tx.out_ref(0)], [(bob.party, 30)], alice.party, notary).sign([alice.key])
    merged = move([issued.tx.out_ref(1), paid.tx.out_ref(0)], [(charlie.party, 80)], bob.party, notary).sign(
        [bob.key]
    )
    store.transactions.record_transaction(issued)
    sent = SenderDistribution(
        paid.id, AUDITOR, WHEN, 0, StatesToRecord.ONLY_RELEVANT, StatesToRecord.ALL_VISIBLE
    )
    store.transactions.record_transaction(paid, sender_records=[sent])
    store.transactions.record_transaction(merged, states_to_record=StatesToRecord.ALL_VISIBLE)
    yield Ledger(store, issued, paid, merged)
    store.close()


def build(store: LedgerStore, page_size: int = 100, pool_size: int = 1) -> LedgerGraph:
    return LedgerGraph.build(store.graph_scans, page_size=page_size, pool_size=pool_size, readers="thread")


def test_sizes_parents_and_backchain(ledger: Ledger) -> None:
    graph = build(ledger.store)
    assert graph.is_initialized and graph.size == 3
    assert graph.contains(ledger.paid.id) and graph.contains(str(ledger.merged.id))
    assert not graph.contains(SecureHash.of(b"nothing"))
    assert graph.parents(ledger.issued.id) == set()
    assert graph.parents(ledger.paid.id) == {ledger.issued.id}
    assert graph.parents(ledger.merged.id) == {ledger.issued.id, ledger.paid.id}
    assert graph.backchain([ledger.merged.id]) == {ledger.issued.id, ledger.paid.id}
    assert graph.backchain([ledger.paid.id, ledger.merged.id]) == {ledger.issued.id, ledger.paid.id}
    with pytest.raises(KeyError, match="not a VERIFIED transaction"):
        graph.parents(SecureHash.of(b"nothing"))


def test_parties_and_involving(ledger: Ledger, alice: Actor, bob: Actor, charlie: Actor) -> None:
    graph = build(ledger.store)
    a, b, c = str(alice.name), str(bob.name), str(charlie.name)
    assert graph.parties(ledger.issued.id) == {a, b}
    # The auditor is named only in the sender's distribution record.
    assert graph.parties(ledger.paid.id) == {a, b, str(AUDITOR)}
    # bob is a participant and the signer; charlie a participant.
    assert graph.parties(ledger.merged.id) == {b, c}
    assert set(graph.ids(graph.involving(c))) == {ledger.merged.id}
    assert set(graph.ids(graph.involving(str(AUDITOR)))) == {ledger.paid.id}
    assert set(graph.ids(graph.involving(a))) == {ledger.issued.id, ledger.paid.id}
    assert len(graph.involving("O=Nobody, L=Oslo, C=NO")) == 0


def test_signer_named_through_a_key_seen_in_another_transaction(
    tmp_path: Path, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'n.db'}", our_keys=[bob.party.owning_key])
    issued = issue(alice.party, notary_actor.party, [(bob.party, 5)], "EUR").sign([alice.key])
    # alice signs the issuance but owns no output anywhere: her name is not known from a key.
    store.transactions.record_transaction(issued)
    assert build(store).parties(issued.id) == {str(bob.name)}


@pytest.fixture
def fixture_store(tmp_path: Path) -> Iterator[LedgerStore]:
    store = LedgerStore(f"sqlite:///{tmp_path / 'fixture.db'}", our_keys=fixture_store_keys())
    load(store, 600)
    yield store
    store.close()


def snapshot(graph: LedgerGraph) -> dict[str, Any]:
    """The arrays, with each transaction's parties for the party set ids (numbered as first seen)."""
    arrays: dict[str, Any] = {name: a.tobytes() for name, a in graph.arrays().items() if name != "party_set"}
    arrays["parties"] = [sorted(graph.parties(t)) for t in graph.ids(range(graph.size))]
    return arrays


@pytest.mark.parametrize("readers", ["thread", "process"])
def test_paged_build_with_readers_equals_one_reader(fixture_store: LedgerStore, readers: str) -> None:
    one = LedgerGraph.build(fixture_store.graph_scans, page_size=10_000, pool_size=1)
    many = LedgerGraph.build(fixture_store.graph_scans, page_size=10, pool_size=3, readers=readers)  # type: ignore[arg-type]
    assert one.size == many.size == 600
    assert snapshot(one) == snapshot(many)
    some = one.ids(range(0, 600, 37))
    assert [many.parties(t) for t in some] == [one.parties(t) for t in some]
    assert check_consistency(many, fixture_store.graph_scans).errors == []


def test_incremental_add_through_the_listener(
    ledger: Ledger, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    graph = build(ledger.store)
    graph.attach(ledger.store.transactions, ledger.store.distribution)
    more = move([ledger.paid.tx.out_ref(1)], [(bob.party, 10)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    ledger.store.transactions.record_transaction(more, status=TransactionStatus.IN_FLIGHT)
    assert not graph.contains(more.id)  # not part of the graph until VERIFIED
    ledger.store.transactions.record_transaction(more)
    assert graph.size == 4 and graph.contains(more.id)
    assert graph.parents(more.id) == {ledger.paid.id}
    assert graph.backchain([more.id]) == {ledger.issued.id, ledger.paid.id}
    assert set(graph.ids(graph.involving(str(bob.name)))) == {
        ledger.issued.id,
        ledger.paid.id,
        ledger.merged.id,
        more.id,
    }
    report = check_consistency(graph, ledger.store.graph_scans)
    assert report.errors == [] and report.is_self_consistent
    # Built again from the store, it is the same graph up to the order of the transactions.
    fresh = build(ledger.store)
    assert {t: fresh.parties(t) for t in fresh.ids(range(4))} == {
        t: graph.parties(t) for t in fresh.ids(range(4))
    }


def test_attach_catches_up_with_transactions_recorded_since_the_build(
    ledger: Ledger, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    graph = build(ledger.store)
    more = move([ledger.paid.tx.out_ref(1)], [(bob.party, 10)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    ledger.store.transactions.record_transaction(more)
    graph.attach(ledger.store.transactions, ledger.store.distribution)
    assert graph.contains(more.id) and graph.size == 4


def test_a_missing_parent_that_arrives_later_is_linked(
    tmp_path: Path, alice: Actor, bob: Actor, notary_actor: Actor, ledger: Ledger
) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'late.db'}", our_keys=[alice.party.owning_key])
    store.transactions.record_transaction(ledger.paid)  # its parent is not here yet
    graph = build(store)
    graph.attach(store.transactions, store.distribution)
    assert graph.parents(ledger.paid.id) == {ledger.issued.id}
    assert not graph.contains(ledger.issued.id)
    store.transactions.record_transaction(ledger.issued)
    assert graph.contains(ledger.issued.id)
    assert graph.backchain([ledger.paid.id]) == {ledger.issued.id}
    assert not any("not recorded" in e for e in check_consistency(graph, store.graph_scans).errors)


def test_a_repair_leaves_the_refs_a_check_is_reading_as_they_were(
    tmp_path: Path, alice: Actor, ledger: Ledger
) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'late.db'}", our_keys=[alice.party.owning_key])
    store.transactions.record_transaction(ledger.paid)  # its parent is not here yet
    graph = build(store)
    graph.attach(store.transactions, store.distribution)
    reading = graph.arrays()["ref_tx"]  # what read_states hands a check, without a copy
    assert reading.tolist() == [-1]
    store.transactions.record_transaction(ledger.issued)
    assert reading.tolist() == [-1]  # the repair wrote a new array
    assert graph.arrays()["ref_tx"].tolist() == [graph.index(ledger.issued.id)]
    store.close()


def test_a_read_that_disagrees_with_the_graph_is_refused(ledger: Ledger) -> None:
    graph = build(ledger.store)
    arrays = graph.arrays()
    ref_off = arrays["ref_off"].copy()
    ref_off[1:] += 1  # as if the first transaction had one ref more than the store now gives it
    with pytest.raises(StoreError, match="changed under the consistency check's read"):
        read_states(
            ledger.store.graph_scans,
            graph.our_keys,
            arrays["ids"],
            None,
            ref_off,
            arrays["ref_tx"],
            [],
            page_size=2,
            pool_size=1,
        )
    nt = ledger.store.schema.node_transactions
    nt.delete().where(nt.tx_id == str(ledger.merged.id)).execute()
    # Rows after the one deleted no longer line up with the graph's; a last one deleted is counted.
    with pytest.raises(StoreError, match=r"changed under the consistency check's read|read 2 .*, expected 3"):
        graph.read_states(ledger.store.graph_scans, page_size=2)


def test_a_consistent_ledger_reports_no_errors(ledger: Ledger) -> None:
    report = check_consistency(build(ledger.store), ledger.store.graph_scans)
    assert report.is_initialized and report.is_self_consistent
    assert report.errors == [] and report.error_count == 0
    require_ready(report)


def test_not_initialised(ledger: Ledger) -> None:
    report = check_consistency(LedgerGraph(), ledger.store.graph_scans)
    assert not report.is_initialized and not report.is_self_consistent
    with pytest.raises(LedgerGraphNotReadyException, match="not initialised"):
        require_ready(report)


def test_missing_parent_is_named(ledger: Ledger) -> None:
    nt = ledger.store.schema.node_transactions
    nt.delete().where(nt.tx_id == str(ledger.issued.id)).execute()
    report = check_consistency(build(ledger.store), ledger.store.graph_scans)
    assert not report.is_self_consistent
    issued = str(ledger.issued.id)
    assert (
        f"transaction {ledger.paid.id}: input {issued}(0) refers to a transaction that is not recorded"
        in (report.errors)
    )
    assert (
        f"transaction {ledger.merged.id}: input {issued}(1) refers to a transaction that is not recorded"
        in (report.errors)
    )
    assert f"vault state {issued}(0) belongs to no VERIFIED transaction" in report.errors
    with pytest.raises(LedgerGraphNotReadyException, match=f"not self-consistent.*{issued}"):
        require_ready(report)


def test_state_consumed_twice_names_both_consumers(
    ledger: Ledger, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor
) -> None:
    change = ledger.paid.tx.out_ref(1)
    first = move([change], [(bob.party, 70)], alice.party, notary_actor.party).sign([alice.key])
    second = move([change], [(charlie.party, 70)], alice.party, notary_actor.party).sign([alice.key])
    ledger.store.transactions.record_transaction(first)
    ledger.store.transactions.record_transaction(second)  # no notary here: the store records the double spend
    report = check_consistency(build(ledger.store), ledger.store.graph_scans)
    consumers = " and ".join(sorted([str(first.id), str(second.id)], key=bytes.fromhex))
    assert report.errors == [f"state {ledger.paid.id}(1) is consumed twice: by {consumers}"]


def test_vault_status_disagreeing_with_the_graph(ledger: Ledger) -> None:
    vs = ledger.store.schema.vault_states
    vs.update(state_status=StateStatus.CONSUMED).where(
        (vs.transaction_id == str(ledger.paid.id)) & (vs.output_index == 1)
    ).execute()
    vs.update(state_status=StateStatus.UNCONSUMED).where(
        (vs.transaction_id == str(ledger.issued.id)) & (vs.output_index == 0)
    ).execute()
    report = check_consistency(build(ledger.store), ledger.store.graph_scans)
    assert sorted(report.errors) == sorted(
        [
            f"vault state {ledger.paid.id}(1) is CONSUMED but no VERIFIED transaction consumes it",
            f"vault state {ledger.issued.id}(0) is UNCONSUMED but transaction {ledger.paid.id} consumes it",
        ]
    )


def test_relevant_output_missing_from_the_vault(ledger: Ledger) -> None:
    vs = ledger.store.schema.vault_states
    vs.delete().where((vs.transaction_id == str(ledger.paid.id)) & (vs.output_index == 1)).execute()
    report = check_consistency(build(ledger.store), ledger.store.graph_scans)
    paid = ledger.paid.id
    assert report.errors == [f"transaction {paid}: relevant output {paid}(1) is not in the vault"]


def test_errors_are_capped_but_counted(ledger: Ledger) -> None:
    vs = ledger.store.schema.vault_states
    vs.delete().execute()
    report = check_consistency(build(ledger.store), ledger.store.graph_scans, max_errors=1)
    assert len(report.errors) == 1 and report.error_count == 2  # issued(0) and paid(1)


def test_an_observer_names_itself_through_its_distribution_records(
    tmp_path: Path, alice: Actor, bob: Actor, charlie: Actor, ledger: Ledger
) -> None:
    # charlie's node received paid through finality; no state or signature of it names charlie.
    store = LedgerStore(f"sqlite:///{tmp_path / 'observer.db'}", our_keys=[charlie.party.owning_key])
    received = ReceiverDistribution(ledger.paid.id, alice.name, WHEN, 0, b"", StatesToRecord.ALL_VISIBLE)
    store.transactions.record_transaction(ledger.issued)
    store.transactions.record_transaction(ledger.paid, receiver_record=received)
    anonymous = build(store)
    assert set(anonymous.ids(anonymous.involving_us())) == {ledger.paid.id}
    assert anonymous.parties(ledger.paid.id) == {str(alice.name), str(bob.name)}  # ours is unknown
    named = LedgerGraph.build(
        store.graph_scans, page_size=100, pool_size=1, readers="thread", me=str(charlie.name)
    )
    assert named.parties(ledger.paid.id) == {str(alice.name), str(bob.name), str(charlie.name)}
    assert set(named.ids(named.involving(str(charlie.name)))) == {ledger.paid.id}
    assert set(named.ids(named.involving(str(alice.name)))) == {ledger.issued.id, ledger.paid.id}
    # Added later, through the listener: the same.
    named.attach(store.transactions, store.distribution)
    store.transactions.record_transaction(
        ledger.merged,
        receiver_record=ReceiverDistribution(
            ledger.merged.id, alice.name, WHEN, 1, b"", StatesToRecord.ALL_VISIBLE
        ),
    )
    assert set(named.ids(named.involving(str(charlie.name)))) == {ledger.paid.id, ledger.merged.id}
    store.close()


def test_our_keys_make_a_transaction_ours(ledger: Ledger, alice: Actor) -> None:
    graph = build(ledger.store)  # our key is alice's
    assert set(graph.ids(graph.involving_us())) == {ledger.issued.id, ledger.paid.id}
    assert graph.our_names() == {str(alice.name)}


def test_a_signer_named_only_in_a_later_page(
    tmp_path: Path, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor
) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'late-signer.db'}")
    naming = issue(charlie.party, notary_actor.party, [(alice.party, 1)], "EUR").sign([charlie.key])
    # alice signs an issuance to bob but owns nothing in it: her key gets her name from `naming`,
    # which must come after it in id order (pages are read in id order) for the late path.
    while True:
        signed = issue(alice.party, notary_actor.party, [(bob.party, 5)], "EUR").sign([alice.key])
        if bytes(signed.id) < bytes(naming.id):
            break
    store.transactions.record_transaction(signed)
    store.transactions.record_transaction(naming)
    one_page, page_each = build(store, page_size=100), build(store, page_size=1)
    assert page_each.parties(signed.id) == one_page.parties(signed.id) == {str(alice.name), str(bob.name)}
    assert snapshot(page_each) == snapshot(one_page)
    store.close()


def test_party_set_ids_widen_past_65536_sets(
    ledger: Ledger, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor
) -> None:
    graph = build(ledger.store)
    graph.attach(ledger.store.transactions, ledger.store.distribution)
    assert graph.arrays()["party_set"].dtype == np.uint16
    for i in range(70_000):  # as if the ledger had seen that many sets of parties already
        name = graph.name_id(f"O=Party {i}, L=Oslo, C=NO")
        graph._sets.intern(np.array([name], dtype=np.int32).tobytes())
    dan = "O=Dan, L=Oslo, C=NO"
    more = move([ledger.paid.tx.out_ref(1)], [(bob.party, 10)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    ledger.store.transactions.record_transaction(more)
    assert graph.arrays()["party_set"].dtype == np.int32
    assert graph.parties(more.id) == {str(alice.name), str(bob.name)}
    assert graph.parties(ledger.merged.id) == {str(bob.name), str(charlie.name)}
    assert set(graph.ids(graph.involving(str(bob.name)))) >= {ledger.issued.id, more.id}
    assert len(graph.involving("O=Party 69999, L=Oslo, C=NO")) == 0  # a name past 65,536, in no transaction
    assert len(graph.involving(dan)) == 0


def test_merges_append_ids_without_copying_them(
    ledger: Ledger, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    graph = build(ledger.store)
    graph.attach(ledger.store.transactions, ledger.store.distribution)
    before = graph.id_set(np.ones(graph.size, dtype=bool))
    held = list(before)
    change = ledger.paid.tx.out_ref(1)
    first = move([change], [(bob.party, 10), (alice.party, 60)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    ledger.store.transactions.record_transaction(first)
    grown = graph.arrays()["ids"]  # the first merge moves the ids into a buffer with room
    second = move([first.tx.out_ref(1)], [(bob.party, 60)], alice.party, notary_actor.party).sign([alice.key])
    ledger.store.transactions.record_transaction(second)
    after = graph.arrays()["ids"]
    assert np.shares_memory(grown, after) and len(after) == len(grown) + 1 == 5
    assert list(before) == held  # a set handed out before the merges is unchanged
    assert graph.contains(first.id) and graph.contains(second.id) and graph.contains(ledger.issued.id)


def test_the_states_kept_from_the_build_are_those_read_again_after_merges(
    ledger: Ledger, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    graph = build(ledger.store)
    graph.attach(ledger.store.transactions, ledger.store.distribution)
    highest = max(bytes(t) for t in graph.ids(range(graph.size)))
    change = ledger.paid.tx.out_ref(1)
    spend = move([change], [(bob.party, 10), (alice.party, 60)], alice.party, notary_actor.party)
    ledger.store.transactions.record_transaction(spend.sign([alice.key]))
    while True:  # one that sorts before an id of the build: the graph's order is then no longer the identity
        lower = issue(alice.party, notary_actor.party, [(bob.party, 5), (alice.party, 1)], "EUR").sign(
            [alice.key]
        )
        if bytes(lower.id) < highest:
            break
    ledger.store.transactions.record_transaction(lower)
    kept = graph.take_states()
    again = graph.read_states(ledger.store.graph_scans, page_size=2)
    assert kept is not None and graph.take_states() is None  # handed over once
    assert graph.arrays()["order"].size == graph.size == 5
    for name in ("ref_off", "ref_tx", "ref_out", "inputs", "out_off", "rel_counts", "rel_out"):
        assert np.array_equal(getattr(kept, name), getattr(again, name)), name
    assert int(kept.outputs[graph.index(lower.id)]) == 2 and len(kept.rel_out) > 0
    assert check_consistency(graph, ledger.store.graph_scans).errors == []
