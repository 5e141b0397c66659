"""The store's contract suite: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

import pytest

from agent.clock import ManualClock
from agent.errors import (
    ConfigurationError,
    ConstraintViolationError,
    MigrationError,
    StoreError,
    TransactionNotFoundError,
)
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.ledger import token
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.transactions import SignedTransaction, sign
from agent.ledger.vault import RelevancyStatus, StateStatus, StatesToRecord, TransactionStatus
from agent.store.database import (
    SCAN_CACHE_KIB,
    SQLITE_PRAGMAS,
    is_sqlite,
    open_database,
    scanning,
    write_transaction,
)
from agent.store.ledger_store import LedgerStore
from agent.store.migrations import LATEST_VERSION, MIGRATIONS, applied_versions, migrate
from agent.store.models import bind_schema
from tests.conftest import Actor

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str, alice: Actor) -> LedgerStore:
    s = LedgerStore(database_url, our_keys=[alice.party.owning_key], clock=ManualClock(NOW))
    yield s
    s.close()


def issue(alice: Actor, bob: Actor, notary: Actor) -> SignedTransaction:
    return token.issue(alice.party, notary.party, [(alice.party, 100), (bob.party, 50)], "GBP").sign(
        [alice.key]
    )


def pay(
    spent: SignedTransaction, index: int, owner: Actor, to: Actor, amount: int, notary: Actor
) -> SignedTransaction:
    stx = token.move([spent.tx.out_ref(index)], [(to.party, amount)], owner.party, notary.party).sign(
        [owner.key]
    )
    return stx.signed_by(notary.key)


# -- schema -------------------------------------------------------------------------------------------


def test_migrations_create_the_corda_shaped_tables_once(store: LedgerStore, database_url: str) -> None:
    tables = set(store.database.get_tables())
    assert {
        "node_transactions",
        "vault_states",
        "state_party",
        "node_sender_distr_recs",
        "node_receiver_distr_recs",
        "node_recovery_party_info",
        "node_aes_encryption_keys",
        "node_checkpoints",
        "node_notary_committed_states",
        "node_notary_committed_txs",
        "ledger_agent_schema_migrations",
    } <= tables
    assert applied_versions(store.schema) == list(range(1, LATEST_VERSION + 1))
    again = LedgerStore(database_url)
    assert applied_versions(again.schema) == list(range(1, LATEST_VERSION + 1))
    again.close()


def test_migration_5_indexes_distribution_records_by_time(database_url: str) -> None:
    db = open_database(database_url)
    s = bind_schema(db)
    # As a version-4 agent left it, with a record in each table.
    with write_transaction(db):
        db.create_tables([s.schema_migrations])
    for migration in MIGRATIONS[:4]:
        with write_transaction(db):
            migration.apply(s)
            s.schema_migrations.create(version=migration.version, name=migration.name, applied_at=NOW)
    with write_transaction(db):
        s.recovery_party_info.create(party_id="ab" * 32, party_name="O=Bob Plc, L=Rome, C=IT")
        common = {"transaction_id": "A" * 64, "peer_party_id": "ab" * 32, "timestamp": NOW}
        s.sender_distr_recs.create(
            **common, timestamp_discriminator=0, sender_states_to_record=2, receiver_states_to_record=2
        )
        s.receiver_distr_recs.create(
            **common, timestamp_discriminator=0, distribution_list=b"l", receiver_states_to_record=2
        )
    assert migrate(s) == [5, 6, 7]
    for model in (s.sender_distr_recs, s.receiver_distr_recs):
        table = model._meta.table_name
        by_time = [i for i in db.get_indexes(table) if i.name == f"{table}_by_time"]
        assert [i.columns for i in by_time] == [
            ["timestamp", "timestamp_discriminator", "transaction_id", "peer_party_id"]
        ]
        assert model.select().count() == 1
    db.close()


def test_a_newer_schema_is_refused(store: LedgerStore, database_url: str) -> None:
    store.schema.schema_migrations.create(version=LATEST_VERSION + 1, name="from the future", applied_at=NOW)
    with pytest.raises(MigrationError, match=f"version {LATEST_VERSION + 1}"):
        LedgerStore(database_url)


def test_sender_records_need_a_known_party_row(store: LedgerStore) -> None:
    # The foreign key of the reference's layout is real: a record for an unknown peer id fails,
    # named as the agent names a constraint violation (every statement is translated, not only writes
    # in write_transaction).
    with pytest.raises(ConstraintViolationError):
        store.schema.sender_distr_recs.insert(
            transaction_id="A" * 64,
            peer_party_id="f" * 64,
            timestamp=NOW,
            timestamp_discriminator=0,
            sender_states_to_record=2,
            receiver_states_to_record=2,
        ).execute()


# -- recording ----------------------------------------------------------------------------------------


def test_recording_an_issuance_keeps_only_our_states(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    stx = issue(alice, bob, notary_actor)
    assert store.transactions.record_transaction(stx) is True
    assert store.transactions.transaction_status(stx.id) is TransactionStatus.VERIFIED
    assert store.transactions.get_transaction(stx.id) == stx
    states = list(store.vault.iter_vault_states(relevancy=None))
    assert [(s.ref.index, s.state.data["amount"]) for s in states] == [(0, 100)]
    assert states[0].relevancy_status is RelevancyStatus.RELEVANT
    assert states[0].notary_name == str(notary_actor.name)
    parties = list(store.schema.state_party.select().dicts())
    assert [p["x500_name"] for p in parties] == [str(alice.name)]


def test_recording_twice_is_a_no_op(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    stx = issue(alice, bob, notary_actor)
    assert store.transactions.record_transaction(stx)
    assert store.transactions.record_transaction(stx) is False
    assert store.transactions.record_transaction(stx, status=TransactionStatus.IN_FLIGHT) is False
    assert store.transactions.count_transactions() == 1
    assert store.vault.count_vault_states() == 1
    assert store.transactions.transaction_status(stx.id) is TransactionStatus.VERIFIED


def test_all_visible_keeps_states_of_others_as_not_relevant(
    store: LedgerStore, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor
) -> None:
    stx = token.issue(bob.party, notary_actor.party, [(bob.party, 7), (charlie.party, 3)], "USD").sign(
        [bob.key]
    )
    store.transactions.record_transaction(stx, states_to_record=StatesToRecord.ALL_VISIBLE)
    assert store.vault.count_vault_states(relevancy=RelevancyStatus.RELEVANT) == 0
    assert store.vault.count_vault_states(relevancy=RelevancyStatus.NOT_RELEVANT) == 2


def test_a_move_consumes_its_input(store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor) -> None:
    first = issue(alice, bob, notary_actor)
    store.transactions.record_transaction(first)
    move = pay(first, 0, alice, bob, 30, notary_actor)
    store.transactions.record_transaction(move)
    consumed = list(store.vault.iter_vault_states(state_status=StateStatus.CONSUMED))
    assert [(c.ref, c.consuming_tx_id) for c in consumed] == [(first.tx.output_ref(0), move.id)]
    assert consumed[0].consumed_timestamp == NOW
    unconsumed = list(store.vault.iter_vault_states())
    assert [(u.ref, u.state.data["amount"]) for u in unconsumed] == [(move.tx.output_ref(1), 70)]


def test_in_flight_is_hidden_until_finalised(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    first = issue(alice, bob, notary_actor)
    store.transactions.record_transaction(first)
    move = token.move([first.tx.out_ref(0)], [(bob.party, 30)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    assert store.transactions.record_transaction(move, status=TransactionStatus.IN_FLIGHT)
    assert store.transactions.get_transaction(move.id) is None
    assert store.transactions.get_stored(move.id).status is TransactionStatus.IN_FLIGHT
    assert store.transactions.producing_transaction(move.id) is None
    assert store.vault.count_vault_states() == 1  # the vault waits for finality
    with pytest.raises(TransactionNotFoundError, match=str(move.id)):
        store.transactions.require_transaction(move.id)

    notary_sig = sign(move.id, notary_actor.key)
    finalised = SignedTransaction(move.tx, (notary_sig,))
    assert store.transactions.record_transaction(finalised) is True
    stored = store.transactions.get_transaction(move.id)
    assert stored is not None
    assert stored.signers() == {alice.party.owning_key, notary_actor.party.owning_key}
    assert [s.state.data["amount"] for s in store.vault.iter_vault_states()] == [70]


def test_remove_in_flight_takes_its_distribution_records(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    first = issue(alice, bob, notary_actor)
    store.transactions.record_transaction(first)
    move = token.move([first.tx.out_ref(0)], [(bob.party, 30)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    record = SenderDistribution(
        move.id, bob.name, NOW, 0, StatesToRecord.ONLY_RELEVANT, StatesToRecord.ONLY_RELEVANT
    )
    store.transactions.record_transaction(move, status=TransactionStatus.IN_FLIGHT, sender_records=[record])
    assert store.distribution.sender_records(move.id) == [record]
    assert store.transactions.remove_in_flight(move.id) is True
    assert store.transactions.transaction_status(move.id) is None
    assert store.distribution.sender_records(move.id) == []
    assert store.transactions.remove_in_flight(first.id) is False  # a VERIFIED transaction is never removed
    assert store.transactions.transaction_status(first.id) is TransactionStatus.VERIFIED


def test_a_failed_write_leaves_nothing(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    stx = issue(alice, bob, notary_actor)
    broken = SenderDistribution(
        stx.id, bob.name, None, 0, StatesToRecord.ONLY_RELEVANT, StatesToRecord.ALL_VISIBLE
    )  # type: ignore[arg-type]
    with pytest.raises(ConstraintViolationError):
        store.transactions.record_transaction(stx, sender_records=[broken])
    assert store.transactions.transaction_status(stx.id) is None
    assert store.vault.count_vault_states(state_status=None) == 0
    assert list(store.schema.state_party.select()) == []
    assert list(store.schema.recovery_party_info.select()) == []
    # and the store is still usable afterwards (corda/corda#3482)
    assert store.transactions.record_transaction(stx) is True


def test_concurrent_recording_of_one_transaction(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    stx = issue(alice, bob, notary_actor)
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def record() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(store.transactions.record_transaction(stx))
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.database.close()

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(results) == [False, False, False, True]
    assert store.vault.count_vault_states() == 1


# -- distribution records -----------------------------------------------------------------------------


def test_distribution_records_round_trip(
    store: LedgerStore, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor
) -> None:
    stx = issue(alice, bob, notary_actor)
    senders = [
        SenderDistribution(
            stx.id, bob.name, NOW, 3, StatesToRecord.ONLY_RELEVANT, StatesToRecord.ONLY_RELEVANT
        ),
        SenderDistribution(
            stx.id, charlie.name, NOW, 3, StatesToRecord.ONLY_RELEVANT, StatesToRecord.ALL_VISIBLE
        ),
    ]
    receiver = ReceiverDistribution(stx.id, bob.name, NOW, 3, b"\x01sealed", StatesToRecord.ONLY_RELEVANT)
    store.transactions.record_transaction(stx, sender_records=senders, receiver_record=receiver)
    assert sorted(store.distribution.sender_records(stx.id), key=lambda r: str(r.peer)) == sorted(
        senders, key=lambda r: str(r.peer)
    )
    assert store.distribution.receiver_records(stx.id) == [receiver]
    info = {r.party_id: r.party_name for r in store.schema.recovery_party_info.select()}
    assert info[bob.name.peer_id] == str(bob.name)

    # Writing again: sender rows are kept as they are, the receiver row is updated (saveOrUpdate).
    newer = ReceiverDistribution(stx.id, bob.name, NOW, 3, b"\x01resealed", StatesToRecord.ALL_VISIBLE)
    store.transactions.record_transaction(stx, sender_records=senders, receiver_record=newer)
    assert store.distribution.receiver_records(stx.id) == [newer]
    assert len(store.distribution.sender_records(stx.id)) == 2


# -- paged reads --------------------------------------------------------------------------------------


def _ledger(store: LedgerStore, alice: Actor, bob: Actor, notary: Actor, n: int) -> list[SignedTransaction]:
    txs = []
    for i in range(n):
        stx = token.issue(alice.party, notary.party, [(alice.party, i + 1)], "GBP").sign([alice.key])
        store.transactions.record_transaction(stx)
        txs.append(stx)
    return txs


def test_ids_come_in_pages_in_id_order(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    txs = _ledger(store, alice, bob, notary_actor, 23)
    pages = list(store.transactions.transaction_id_pages(page_size=5))
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    ids = list(store.transactions.iter_transaction_ids(page_size=5))
    assert ids == sorted(stx.id for stx in txs)
    assert [s.stx.id for s in store.transactions.iter_transactions(page_size=4)] == ids
    assert (
        list(store.transactions.iter_transaction_ids(status=TransactionStatus.IN_FLIGHT, page_size=5)) == []
    )


def test_vault_pages_cross_the_composite_key(store: LedgerStore, alice: Actor, notary_actor: Actor) -> None:
    stx = token.issue(alice.party, notary_actor.party, [(alice.party, a) for a in range(1, 8)], "GBP").sign(
        [alice.key]
    )
    store.transactions.record_transaction(stx)
    other = token.issue(alice.party, notary_actor.party, [(alice.party, 50)], "EUR").sign([alice.key])
    store.transactions.record_transaction(other)
    got = [s.ref for s in store.vault.iter_vault_states(page_size=3)]
    assert got == sorted([stx.tx.output_ref(i) for i in range(7)] + [other.tx.output_ref(0)])


@pytest.mark.parametrize("bad", [0, -1, 10_000_001, True, "100"])
def test_page_size_out_of_range_names_the_key(store: LedgerStore, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="pageSize") as err:
        list(store.transactions.iter_transaction_ids(page_size=bad))  # type: ignore[arg-type]
    assert "1 to 10000000" in str(err.value)


def test_a_scan_keeps_the_threads_sqlite_cache_small_and_gives_it_back(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    store.transactions.record_transaction(issue(alice, bob, notary_actor))
    sqlite = is_sqlite(store.database)

    def cache_size() -> int | None:
        return store.database.execute_sql("PRAGMA cache_size").fetchone()[0] if sqlite else None

    before = cache_size()
    with scanning(store.database):
        during = cache_size()
        assert len(list(store.vault.iter_vault_states())) == 1  # queries run as usual (alice's state)
    assert cache_size() == before
    if sqlite:
        assert (before, during) == (SQLITE_PRAGMAS["cache_size"], -SCAN_CACHE_KIB)
    with pytest.raises(RuntimeError), scanning(store.database):
        raise RuntimeError("a check that fails half way")
    assert cache_size() == before


# -- keys and checkpoints ----------------------------------------------------------------------------


def test_aes_keys_are_added_once(store: LedgerStore) -> None:
    keys = {f"00000000-0000-0000-0000-00000000000{i}": bytes([i]) * 24 for i in range(3)}
    store.keys.add_aes_keys(keys)
    store.keys.add_aes_keys({next(iter(keys)): b"other"})
    assert store.keys.aes_keys() == keys


def test_checkpoints_are_upserted_and_listed(store: LedgerStore, bob: Actor) -> None:
    cp = FlowCheckpoint(
        flow_id="e0d781be-b4ab-43e0-b694-e97cc4eaa6ee",
        flow_name="FinalityFlow",
        status=FlowStatus.RUNNABLE,
        started_at=NOW,
        updated_at=NOW,
        progress_step="RECORDED_IN_FLIGHT",
        counterparties=(bob.name,),
        tx_id=SecureHash.of(b"tx"),
        value=b"\x00state",
    )
    store.checkpoints.save_checkpoint(cp)
    failed = FlowCheckpoint(
        **{**cp.__dict__, "status": FlowStatus.FAILED, "error": "boom", "progress_step": "NOTARISING"}
    )
    store.checkpoints.save_checkpoint(failed)
    assert store.checkpoints.get_checkpoint(cp.flow_id) == failed
    assert list(store.checkpoints.iter_checkpoints(FlowStatus.FAILED)) == [failed]
    assert list(store.checkpoints.iter_checkpoints(FlowStatus.RUNNABLE)) == []
    assert store.checkpoints.get_checkpoint("nope") is None


# -- bulk path and isolation --------------------------------------------------------------------------


def test_bulk_record_leaves_what_record_transaction_leaves(
    database_url: str, tmp_path: object, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    first = issue(alice, bob, notary_actor)
    second = pay(first, 0, alice, bob, 40, notary_actor)
    third = pay(second, 1, alice, bob, 10, notary_actor)
    chain = [first, second, third]
    one = LedgerStore(
        f"sqlite:///{tmp_path}/one.db", our_keys=[alice.party.owning_key], clock=ManualClock(NOW)
    )
    bulk = LedgerStore(database_url, our_keys=[alice.party.owning_key], clock=ManualClock(NOW))
    for stx in chain:
        one.transactions.record_transaction(stx)
    assert bulk.bulk_record(chain, batch_size=2, timestamp=NOW) == 3

    def vault(s: LedgerStore) -> list[tuple[object, ...]]:
        return [
            (v.ref, v.state_status, v.relevancy_status, v.consuming_tx_id, v.state.data["amount"])
            for v in s.vault.iter_vault_states(state_status=None, relevancy=None)
        ]

    assert vault(bulk) == vault(one)
    assert list(bulk.transactions.iter_transaction_ids()) == list(one.transactions.iter_transaction_ids())
    assert bulk.transactions.get_transaction(third.id) == third
    one.close()
    bulk.close()


def test_two_stores_in_one_process_do_not_share_models(
    database_url: str, tmp_path: object, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    a = LedgerStore(database_url, our_keys=[alice.party.owning_key])
    b = LedgerStore(f"sqlite:///{tmp_path}/other.db", our_keys=[bob.party.owning_key])
    stx = issue(alice, bob, notary_actor)
    a.transactions.record_transaction(stx)
    assert b.transactions.count_transactions() == 0
    b.transactions.record_transaction(stx)
    assert [v.state.data["amount"] for v in a.vault.iter_vault_states()] == [100]
    assert [v.state.data["amount"] for v in b.vault.iter_vault_states()] == [50]
    a.close()
    b.close()


@pytest.mark.parametrize("url", ["mysql://root@localhost/x", "sqlite://", "node.db", "sqlite:///"])
def test_unsupported_database_urls_name_the_key(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"dataSourceProperties\.dataSource\.url"):
        LedgerStore(url)


def test_an_unreachable_database_is_named_without_its_password() -> None:
    with pytest.raises(
        StoreError, match=re.escape("cannot open the database at postgresql://agent@127.0.0.1:1/ledger")
    ) as err:
        LedgerStore("postgresql://agent:s3cret@127.0.0.1:1/ledger")
    assert "s3cret" not in str(err.value)


def test_listeners_hear_of_each_change_once(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    heard: list[tuple[object, TransactionStatus]] = []
    store.transactions.add_listener(lambda stx, status: heard.append((stx.id, status)))
    first = issue(alice, bob, notary_actor)
    store.transactions.record_transaction(first)
    store.transactions.record_transaction(first)
    move = token.move([first.tx.out_ref(0)], [(bob.party, 1)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    store.transactions.record_transaction(move, status=TransactionStatus.IN_FLIGHT)
    store.transactions.record_transaction(move.signed_by(notary_actor.key))
    assert heard == [
        (first.id, TransactionStatus.VERIFIED),
        (move.id, TransactionStatus.IN_FLIGHT),
        (move.id, TransactionStatus.VERIFIED),
    ]
