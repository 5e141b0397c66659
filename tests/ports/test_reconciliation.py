"""CR_RECONCILIATION_STATUS: migration 2, the reference's columns and rules, and the printed form.

Every database test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.errors import SerializationError, StoreError
from agent.ledger.hashing import SecureHash
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue
from agent.store.database import open_database, write_transaction
from agent.store.migrations import LATEST_VERSION, MIGRATIONS, applied_versions, migrate
from agent.store.models import Schema, bind_schema
from agent.store.reconciliation import ReconciliationStatusRepository

V = ReconciliationStatusValue
PARTY_B = "O=PartyB, L=London, C=GB"
PARTY_C = "O=PartyC, L=Paris, C=FR"
RUN_ID = "c243222b-1940-45df-8828-a8496196d274"

# The ids of the reference's DIFFERENCES_FOUND example, in its order.
REFERENCE_IDS = tuple(
    SecureHash.parse(h)
    for h in """
    0B81D5CB3FC8B88669C57281B028D8656F030C6D105FDE4BD34D9051DDB6629B
    0F4BB8AB994F5860933F402276ED288518592413F56550DB3F79056C8364498D
    42453FF02CD23715595ED07A3A2C4E84C6DF8C93B6C07C21AA0AE11DFCDFFBB5
    3D9DDF59F8CD75A4C87A28FB7DB0CAFB758B8D40F3675CBA331AD4A6C27CB132
    5CB4A8B86D9513D04FD25C067E562511812B9DF2C638168F5CDDB9BEF618FF94
    DFC3FDF97B6ADBE514DF272BD2B90E2150ACD256E20E5D55275913BEBABCABC4
    904E7BC465DC28B4717A7B8391916BE0F78568862941B17B2BF62EA789C1CE7D
    A53D01DF6980EE285FAEB0F8C26E67222B0F91A87C468411DDDC87C0ACD19377
    997F77E5D02B263F9832F0002C3B18A07298DEF4AAB0E16153B9A9DFC617F604
    1E014176450C0198A2686A06A2885710F071466B5D537BEEF88510EF9AD48653
    """.split()  # noqa: SIM905 - one id a line, as the reference prints them
)

# The reference's three examples as it prints them after "Flow completed with result: ", with the
# comma after stateMachineRunId that its re-formatting lost.
REFERENCE_IN_PROGRESS = """\
ReconciliationStatus(
    partyName="O=PartyB, L=London, C=GB",
    isRequester=true,
    stateMachineRunId="c243222b-1940-45df-8828-a8496196d274",
    lastSuccessfulReconciliationTimeStarted=null,
    lastSuccessfulReconciliationTimeFinished=null,
    lastSuccessfulReconciliationStatus=null,
    lastSuccessfulReconciliationResult=[

    ],
    lastReconciliationTimeStarted=1582894011489,
    lastReconciliationTimeFinished=null,
    lastReconciliationStatus=IN_PROGRESS,
    lastReconciliationError=""
)"""

REFERENCE_DIFFERENCES_FOUND = """\
ReconciliationStatus(
    partyName="O=PartyB, L=London, C=GB",
    isRequester=true,
    stateMachineRunId="c243222b-1940-45df-8828-a8496196d274",
    lastSuccessfulReconciliationTimeStarted=1582893847919,
    lastSuccessfulReconciliationTimeFinished=1582893848879,
    lastSuccessfulReconciliationStatus=DIFFERENCES_FOUND,
    lastSuccessfulReconciliationResult=[
        0B81D5CB3FC8B88669C57281B028D8656F030C6D105FDE4BD34D9051DDB6629B,
        0F4BB8AB994F5860933F402276ED288518592413F56550DB3F79056C8364498D,
        42453FF02CD23715595ED07A3A2C4E84C6DF8C93B6C07C21AA0AE11DFCDFFBB5,
        3D9DDF59F8CD75A4C87A28FB7DB0CAFB758B8D40F3675CBA331AD4A6C27CB132,
        5CB4A8B86D9513D04FD25C067E562511812B9DF2C638168F5CDDB9BEF618FF94,
        DFC3FDF97B6ADBE514DF272BD2B90E2150ACD256E20E5D55275913BEBABCABC4,
        904E7BC465DC28B4717A7B8391916BE0F78568862941B17B2BF62EA789C1CE7D,
        A53D01DF6980EE285FAEB0F8C26E67222B0F91A87C468411DDDC87C0ACD19377,
        997F77E5D02B263F9832F0002C3B18A07298DEF4AAB0E16153B9A9DFC617F604,
        1E014176450C0198A2686A06A2885710F071466B5D537BEEF88510EF9AD48653
    ],
    lastReconciliationTimeStarted=1582893847919,
    lastReconciliationTimeFinished=1582893848879,
    lastReconciliationStatus=DIFFERENCES_FOUND,
    lastReconciliationError=""
)"""

REFERENCE_STOPPED = """\
ReconciliationStatus(
    partyName="O=PartyB, L=London, C=GB",
    isRequester=true,
    stateMachineRunId="c243222b-1940-45df-8828-a8496196d274",
    lastSuccessfulReconciliationTimeStarted=null,
    lastSuccessfulReconciliationTimeFinished=null,
    lastSuccessfulReconciliationStatus=null,
    lastSuccessfulReconciliationResult=[

    ],
    lastReconciliationTimeStarted=1582898520512,
    lastReconciliationTimeFinished=1582899423716,
    lastReconciliationStatus=STOPPED,
    lastReconciliationError=""
)"""

COLUMNS = {
    "party_name",
    "is_requester",
    "state_machine_id",
    "last_successful_reconciliation_time_started",
    "last_successful_reconciliation_time_finished",
    "last_successful_reconciliation_status",
    "last_successful_reconciliation_result",
    "last_reconciliation_time_started",
    "last_reconciliation_time_finished",
    "last_reconciliation_status",
    "last_reconciliation_error",
}


def one_line(pretty: str) -> str:
    """The reference's re-formatted layout folded back onto one line."""
    text = pretty.replace("[\n\n    ]", "[]")
    lines = [line.strip() for line in text.splitlines()]
    out = lines[0]
    for line in lines[1:]:
        if line == ")" or line.startswith("]") or out.endswith(("(", "[")):
            out += line
        else:
            out += " " + line
    return out


def h(n: int) -> SecureHash:
    return SecureHash.of(n.to_bytes(4, "big"))


@pytest.fixture
def schema(database_url: str) -> Iterator[Schema]:
    db = open_database(database_url)
    s = bind_schema(db)
    migrate(s)
    yield s
    db.close()


@pytest.fixture
def repo(schema: Schema) -> ReconciliationStatusRepository:
    return ReconciliationStatusRepository(schema)


# -- migration 2 -------------------------------------------------------------------------------------


def test_a_fresh_database_runs_every_migration_in_order(database_url: str) -> None:
    db = open_database(database_url)
    s = bind_schema(db)
    assert migrate(s) == [1, 2, 3, 4, 5, 6, 7]
    assert LATEST_VERSION == 7
    assert applied_versions(s) == [1, 2, 3, 4, 5, 6, 7]
    tables = db.get_tables()
    for table in ("cr_reconciliation_status", "cr_reconciliation_jobs", "cr_reconciliation_requests"):
        assert table in tables
    assert migrate(s) == []
    db.close()


def test_a_version_1_database_runs_migration_2_only(database_url: str) -> None:
    db = open_database(database_url)
    s = bind_schema(db)
    # A database as the version-1 agent left it: migration 1 alone, with a row of data.
    with write_transaction(db):
        db.create_tables([s.schema_migrations])
    first = MIGRATIONS[0]
    assert first.version == 1
    with write_transaction(db):
        first.apply(s)
        s.schema_migrations.create(version=1, name=first.name, applied_at="2026-01-01 00:00:00")
        s.recovery_party_info.create(party_id="AB" * 32, party_name=PARTY_B)
    tables_v1 = set(db.get_tables())
    assert "cr_reconciliation_status" not in tables_v1
    assert {"node_transactions", "node_recovery_party_info", "node_notary_request_log"} <= tables_v1

    assert migrate(s) == [2, 3, 4, 5, 6, 7]
    assert applied_versions(s) == [1, 2, 3, 4, 5, 6, 7]
    assert set(db.get_tables()) == tables_v1 | {
        "cr_reconciliation_status",
        "cr_reconciliation_jobs",
        "cr_reconciliation_requests",
        "node_flow_hospital",
        "node_audit_log",
        "node_recovery_missing",
        "node_recovery_results",
        "node_recovery_cursors",
    }
    assert s.recovery_party_info.get_by_id("AB" * 32).party_name == PARTY_B
    db.close()


def test_the_table_has_exactly_the_references_columns(schema: Schema) -> None:
    db = schema.database
    columns = {c.name: c for c in db.get_columns("cr_reconciliation_status")}
    assert set(columns) == COLUMNS
    assert db.get_primary_keys("cr_reconciliation_status") == ["party_name", "is_requester"]
    for name in COLUMNS:
        if "_time_" in name:
            # Epoch milliseconds need 64 bits (SQLite's INTEGER is 64-bit).
            assert columns[name].data_type.lower() in {"bigint", "integer"}, name
    assert columns["last_successful_reconciliation_result"].data_type.lower() in {"blob", "bytea"}


def test_the_result_is_stored_as_concatenated_32_byte_ids(
    repo: ReconciliationStatusRepository, schema: Schema
) -> None:
    repo.started(PARTY_B, True, RUN_ID, 1)
    repo.succeeded(PARTY_B, True, 2, [h(1), h(2), h(1)])
    cursor = schema.database.execute_sql(
        "SELECT last_successful_reconciliation_result FROM cr_reconciliation_status"
    )
    (raw,) = cursor.fetchone()
    assert bytes(raw) == bytes(h(1)) + bytes(h(2))


def test_times_beyond_32_bits_are_kept(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 1582894011489)
    status = repo.get(PARTY_B, True)
    assert status is not None
    assert status.last_reconciliation_time_started == 1582894011489


# -- the rules ---------------------------------------------------------------------------------------


def test_started_is_in_progress_with_nothing_successful(repo: ReconciliationStatusRepository) -> None:
    status = repo.started(PARTY_B, True, RUN_ID, 1582894011489)
    assert status == repo.get(PARTY_B, True)
    assert status.last_reconciliation_status is V.IN_PROGRESS
    assert status.last_reconciliation_time_started == 1582894011489
    assert status.last_reconciliation_time_finished is None
    assert status.last_reconciliation_error == ""
    assert status.state_machine_run_id == RUN_ID
    assert status.last_successful_reconciliation_status is None
    assert status.last_successful_reconciliation_time_started is None
    assert status.last_successful_reconciliation_result == ()
    assert status.pretty() == REFERENCE_IN_PROGRESS


def test_success_with_differences_sets_both_column_sets(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 1582893847919)
    status = repo.succeeded(PARTY_B, True, 1582893848879, REFERENCE_IDS)
    assert status.last_successful_reconciliation_status is V.DIFFERENCES_FOUND
    assert status.last_reconciliation_status is V.DIFFERENCES_FOUND
    assert status.last_successful_reconciliation_result == REFERENCE_IDS
    assert status.pretty() == REFERENCE_DIFFERENCES_FOUND


def test_success_without_differences(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 10)
    status = repo.succeeded(PARTY_B, True, 20, [])
    assert status.last_successful_reconciliation_status is V.DIFFERENCES_NOT_FOUND
    assert status.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND
    assert status.last_successful_reconciliation_result == ()
    assert (
        status.last_successful_reconciliation_time_started,
        status.last_successful_reconciliation_time_finished,
    ) == (
        10,
        20,
    )


def test_a_failure_keeps_the_previous_success(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 10)
    repo.succeeded(PARTY_B, True, 20, [h(1)])
    second_run = "11111111-2222-3333-4444-555555555555"
    running = repo.started(PARTY_B, True, second_run, 30)
    assert running.last_reconciliation_status is V.IN_PROGRESS
    assert running.last_reconciliation_time_finished is None
    assert running.last_successful_reconciliation_status is V.DIFFERENCES_FOUND
    assert running.last_successful_reconciliation_result == (h(1),)

    status = repo.failed(PARTY_B, True, 40, 'MaxMessageSizeExceededException: "too big"')
    assert status.last_reconciliation_status is V.FAILED
    assert status.last_reconciliation_error == 'MaxMessageSizeExceededException: "too big"'
    assert (status.last_reconciliation_time_started, status.last_reconciliation_time_finished) == (30, 40)
    assert status.state_machine_run_id == second_run
    assert status.last_successful_reconciliation_status is V.DIFFERENCES_FOUND
    assert status.last_successful_reconciliation_result == (h(1),)
    assert (
        status.last_successful_reconciliation_time_started,
        status.last_successful_reconciliation_time_finished,
    ) == (
        10,
        20,
    )
    assert 'lastReconciliationError="MaxMessageSizeExceededException: \\"too big\\""' in str(status)


def test_a_new_start_clears_the_error(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 10)
    repo.failed(PARTY_B, True, 20, "boom")
    status = repo.started(PARTY_B, True, RUN_ID, 30)
    assert status.last_reconciliation_error == ""
    assert status.last_reconciliation_status is V.IN_PROGRESS
    assert status.last_successful_reconciliation_status is None


def test_stopped_as_in_the_reference(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 1582898520512)
    status = repo.stopped(PARTY_B, True, 1582899423716)
    assert status.last_reconciliation_status is V.STOPPED
    assert status.pretty() == REFERENCE_STOPPED


def test_a_later_success_replaces_the_previous_one(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 10)
    repo.succeeded(PARTY_B, True, 20, [h(1), h(2)])
    repo.started(PARTY_B, True, RUN_ID, 30)
    status = repo.succeeded(PARTY_B, True, 40, [])
    assert status.last_successful_reconciliation_status is V.DIFFERENCES_NOT_FOUND
    assert status.last_successful_reconciliation_result == ()
    assert status.last_successful_reconciliation_time_started == 30


def test_finishing_what_never_started_is_refused(repo: ReconciliationStatusRepository) -> None:
    with pytest.raises(StoreError, match="PartyB"):
        repo.succeeded(PARTY_B, True, 1, [])
    with pytest.raises(StoreError):
        repo.failed(PARTY_B, True, 1, "x")
    with pytest.raises(StoreError):
        repo.stopped(PARTY_B, True, 1)
    assert repo.get(PARTY_B, True) is None


def test_each_direction_has_its_own_row(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 10)
    repo.started(PARTY_B, False, "other", 11)
    repo.failed(PARTY_B, False, 12, "x")
    requester = repo.get(PARTY_B, True)
    responder = repo.get(PARTY_B, False)
    assert requester is not None
    assert responder is not None
    assert requester.last_reconciliation_status is V.IN_PROGRESS
    assert responder.last_reconciliation_status is V.FAILED
    assert not responder.is_requester
    assert "isRequester=false" in str(responder)


def test_spellings_of_one_name_share_a_row(repo: ReconciliationStatusRepository) -> None:
    repo.started("O=PartyB,L=London,C=GB", True, RUN_ID, 10)
    repo.succeeded("o=PartyB,  l=London, c=GB", True, 20, [])
    status = repo.get(PARTY_B, True)
    assert status is not None
    assert status.party_name == PARTY_B
    assert status.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND


def test_query_filters_as_get_reconciliation_statuses_flow(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_C, True, "c", 1)
    repo.started(PARTY_B, True, "b", 1)
    repo.failed(PARTY_B, True, 2, "x")
    repo.started(PARTY_B, False, "b2", 1)
    assert [s.party_name for s in repo.query()] == [PARTY_B, PARTY_C]
    assert [s.party_name for s in repo.query(last_reconciliation_status=V.FAILED)] == [PARTY_B]
    assert [s.party_name for s in repo.query(party=PARTY_C)] == [PARTY_C]
    assert repo.query(party=PARTY_C, last_reconciliation_status=V.FAILED) == []
    responders = repo.query(is_requester=False)
    assert [(s.party_name, s.state_machine_run_id) for s in responders] == [(PARTY_B, "b2")]


# -- refresh -----------------------------------------------------------------------------------------


def test_refresh_drops_recovered_ids(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 10)
    repo.succeeded(PARTY_B, True, 20, [h(1), h(2), h(3)])
    repo.started(PARTY_C, True, RUN_ID, 10)
    repo.succeeded(PARTY_C, True, 20, [h(2), h(4)])
    asked: list[SecureHash] = []

    def present(tx_id: SecureHash) -> bool:
        asked.append(tx_id)
        return tx_id in {h(1), h(2), h(4)}

    assert repo.refresh(present) == 4
    assert sorted(asked) == sorted({h(1), h(2), h(3), h(4)})  # each id asked once
    b = repo.get(PARTY_B, True)
    c = repo.get(PARTY_C, True)
    assert b is not None
    assert c is not None
    assert b.last_successful_reconciliation_result == (h(3),)
    assert b.last_successful_reconciliation_status is V.DIFFERENCES_FOUND
    assert b.last_reconciliation_status is V.DIFFERENCES_FOUND
    assert c.last_successful_reconciliation_result == ()
    assert c.last_successful_reconciliation_status is V.DIFFERENCES_NOT_FOUND
    assert c.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND
    assert c.last_successful_reconciliation_time_finished == 20
    assert repo.parties_with_difference() == [PARTY_B]
    assert repo.refresh(present) == 0


def test_refresh_keeps_a_later_failure(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 10)
    repo.succeeded(PARTY_B, True, 20, [h(1)])
    repo.started(PARTY_B, True, RUN_ID, 30)
    repo.failed(PARTY_B, True, 40, "boom")
    assert repo.refresh(lambda _: True) == 1
    status = repo.get(PARTY_B, True)
    assert status is not None
    assert status.last_successful_reconciliation_status is V.DIFFERENCES_NOT_FOUND
    assert status.last_successful_reconciliation_result == ()
    assert status.last_reconciliation_status is V.FAILED
    assert status.last_reconciliation_error == "boom"


def test_refresh_with_nothing_present_changes_nothing(repo: ReconciliationStatusRepository) -> None:
    repo.started(PARTY_B, True, RUN_ID, 10)
    before = repo.succeeded(PARTY_B, True, 20, [h(1)])
    assert repo.refresh(lambda _: False) == 0
    assert repo.get(PARTY_B, True) == before


# -- the JMX counts ----------------------------------------------------------------------------------


def test_counts_look_at_the_last_status_of_requester_rows(repo: ReconciliationStatusRepository) -> None:
    parties = [f"O=Party{n}, L=London, C=GB" for n in "DEFGH"]
    for p in parties:
        repo.started(p, True, RUN_ID, 1)
    repo.succeeded(parties[0], True, 2, [h(1)])
    repo.succeeded(parties[1], True, 2, [])
    repo.failed(parties[2], True, 2, "x")
    repo.stopped(parties[3], True, 2)
    # parties[4] stays IN_PROGRESS. A success then a failure counts as failed, not as differences.
    repo.started(PARTY_B, True, RUN_ID, 1)
    repo.succeeded(PARTY_B, True, 2, [h(1)])
    repo.started(PARTY_B, True, RUN_ID, 3)
    repo.failed(PARTY_B, True, 4, "y")
    # Responder rows are not counted.
    repo.started(PARTY_C, False, RUN_ID, 1)
    repo.started(parties[0], False, RUN_ID, 1)
    repo.failed(parties[0], False, 2, "z")

    assert repo.number_in_progress() == 1
    assert repo.number_failed() == 2
    assert repo.number_with_differences() == 1
    assert repo.number_without_differences() == 1
    assert repo.failed_parties() == [PARTY_B, parties[2]]
    assert repo.parties_with_difference() == [parties[0]]


def test_an_empty_table_counts_nothing(repo: ReconciliationStatusRepository) -> None:
    assert repo.number_in_progress() == repo.number_failed() == 0
    assert repo.failed_parties() == repo.parties_with_difference() == []
    assert repo.query() == []


# -- the printed form (no database) ------------------------------------------------------------------


def reference_status(**changes: object) -> ReconciliationStatus:
    fields: dict[str, object] = {
        "party_name": PARTY_B,
        "is_requester": True,
        "state_machine_run_id": RUN_ID,
        "last_successful_reconciliation_time_started": 1582893847919,
        "last_successful_reconciliation_time_finished": 1582893848879,
        "last_successful_reconciliation_status": V.DIFFERENCES_FOUND,
        "last_successful_reconciliation_result": REFERENCE_IDS,
        "last_reconciliation_time_started": 1582893847919,
        "last_reconciliation_time_finished": 1582893848879,
        "last_reconciliation_status": V.DIFFERENCES_FOUND,
        "last_reconciliation_error": "",
    }
    fields.update(changes)
    return ReconciliationStatus(**fields)  # type: ignore[arg-type]


def test_str_is_the_references_form_on_one_line() -> None:
    status = reference_status()
    assert status.pretty() == REFERENCE_DIFFERENCES_FOUND
    assert str(status) == one_line(REFERENCE_DIFFERENCES_FOUND)
    assert str(status).startswith(
        'ReconciliationStatus(partyName="O=PartyB, L=London, C=GB", isRequester=true, '
        'stateMachineRunId="c243222b-1940-45df-8828-a8496196d274", '
        "lastSuccessfulReconciliationTimeStarted=1582893847919, "
    )
    assert (
        "lastSuccessfulReconciliationResult=[0B81D5CB3FC8B88669C57281B028D8656F030C6D105FDE4BD34D9051DDB6629B, "
        "0F4BB8AB994F5860933F402276ED288518592413F56550DB3F79056C8364498D, " in str(status)
    )


def test_str_of_an_empty_result_and_nulls() -> None:
    status = reference_status(
        state_machine_run_id=None,
        last_successful_reconciliation_time_started=None,
        last_successful_reconciliation_time_finished=None,
        last_successful_reconciliation_status=None,
        last_successful_reconciliation_result=(),
        last_reconciliation_time_finished=None,
        last_reconciliation_status=V.IN_PROGRESS,
    )
    assert str(status) == (
        'ReconciliationStatus(partyName="O=PartyB, L=London, C=GB", isRequester=true, '
        "stateMachineRunId=null, lastSuccessfulReconciliationTimeStarted=null, "
        "lastSuccessfulReconciliationTimeFinished=null, lastSuccessfulReconciliationStatus=null, "
        "lastSuccessfulReconciliationResult=[], lastReconciliationTimeStarted=1582893847919, "
        'lastReconciliationTimeFinished=null, lastReconciliationStatus=IN_PROGRESS, lastReconciliationError="")'
    )


def test_the_status_is_frozen() -> None:
    with pytest.raises(AttributeError):
        reference_status().party_name = PARTY_C  # type: ignore[misc]


def test_a_corrupt_result_is_named(repo: ReconciliationStatusRepository, schema: Schema) -> None:
    repo.started(PARTY_B, True, RUN_ID, 1)
    rows = schema.reconciliation_status
    rows.update(last_successful_reconciliation_result=b"\x00" * 33).execute()
    with pytest.raises(SerializationError, match="32-byte"):
        repo.get(PARTY_B, True)


# -- the responder's request window (RequestWindow) ----------------------------------------------------


def test_the_request_window_records_until_the_limit_and_forgets_what_is_old(schema: Schema) -> None:
    from agent.store.reconciliation import RequestWindowRepository

    window = RequestWindowRepository(schema)
    assert window.admit_within(PARTY_B, 1_000, 0, 2) is None
    assert window.admit_within(PARTY_B, 2_000, 0, 2) is None
    assert window.admit_within(PARTY_B, 3_000, 0, 2) == 2  # full: nothing recorded
    assert window.admit_within(PARTY_C, 3_000, 0, 2) is None  # each party has its own window
    assert window.admit_within(PARTY_B, 4_000, 1_000, 2) is None  # the request at 1,000 has left it
    assert window.admit_within(PARTY_B, 5_000, 1_000, 2) == 2
    assert window.admit_within(PARTY_B, 5_000, 0, 0) == 2  # none allowed: refused, as counted
