"""Reconciliation statuses: the reference's ReconciliationStatus, and the CR_RECONCILIATION_STATUS table.

One row per (party, direction): `is_requester` true for reconciliations this node asked for, false
for ones another node asked of it. The rules, as the reference states them:

- `started` sets the last_reconciliation_* columns to IN_PROGRESS (clearing finish time and error)
  and keeps last_successful_* as they were.
- `succeeded` sets last_successful_* and last_reconciliation_* together: DIFFERENCES_FOUND with the
  missing ids, or DIFFERENCES_NOT_FOUND with the empty set. The successful run's start time is the
  start recorded by `started`.
- `failed` (FAILED, with the error) and `stopped` (STOPPED) change last_reconciliation_* only, so a
  row may show an earlier success beside a later failure.

Choices where the reference is vague:

- Party names are stored as the printed X.500 name (`O=PartyB, L=London, C=GB`), so the spellings
  of one name share one row.
- `succeeded`, `failed` and `stopped` need the row `started` made (StoreError otherwise): the
  reference writes rows only once a reconciliation is IN_PROGRESS. `started` does not refuse a row
  already IN_PROGRESS; the scheduler refuses a second reconciliation before it gets here.
- The result is a set: ids given twice are stored once, in the order first given.
- `refresh` (RefreshReconciliationStatusesFlow) drops recovered ids from every row's result; a result
  that becomes empty turns last_successful_reconciliation_status into DIFFERENCES_NOT_FOUND, and
  last_reconciliation_status too when that was DIFFERENCES_FOUND (then the last run *is* the last
  successful one), so a recovered party leaves PartiesWithDifference.
- The JMX counts and lists (NumberOfReconciliationsInProgress, FailedParties, ...) look at
  last_reconciliation_status of requester rows only: the reference's results live on the requester
  ("work only in one direction"), and the latest run is what an operator is asking about.
- The status values and how a status prints are the management API's (agent.operator_api.status,
  which the operator tools import too).

The peewee adapter of agent.ports.reconciliation; the responder's request window is here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from agent.errors import SerializationError, StoreError
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue
from agent.store.database import write_transaction
from agent.store.models import ReconciliationStatusRow, Schema

_ID_SIZE = 32


def _name(party: X500Name | str) -> str:
    return str(party if isinstance(party, X500Name) else X500Name.parse(party))


def encode_ids(ids: Iterable[SecureHash]) -> bytes:
    """The set of ids as concatenated 32-byte ids, each once, in the order first given."""
    return b"".join(dict.fromkeys(bytes(SecureHash(bytes(i))) for i in ids))


def decode_ids(raw: bytes | memoryview | None) -> tuple[SecureHash, ...]:
    data = bytes(raw) if raw is not None else b""
    if len(data) % _ID_SIZE:
        raise SerializationError(
            "last_successful_reconciliation_result", f"{len(data)} bytes is not a whole number of 32-byte ids"
        )
    return tuple(SecureHash(data[i : i + _ID_SIZE]) for i in range(0, len(data), _ID_SIZE))


def _status(value: str | None) -> ReconciliationStatusValue | None:
    return None if value is None else ReconciliationStatusValue(value)


class ReconciliationStatusRepository:
    """Reads and writes cr_reconciliation_status through a bound Schema."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._rows = schema.reconciliation_status

    # -- writes ------------------------------------------------------------------------------------

    def started(
        self, party: X500Name | str, is_requester: bool, state_machine_id: str, at_ms: int
    ) -> ReconciliationStatus:
        """The reconciliation is IN_PROGRESS: a row is made if there was none; last_successful_* kept."""
        name = _name(party)
        changes: dict[str, Any] = {
            "state_machine_id": state_machine_id,
            "last_reconciliation_time_started": at_ms,
            "last_reconciliation_time_finished": None,
            "last_reconciliation_status": ReconciliationStatusValue.IN_PROGRESS.value,
            "last_reconciliation_error": "",
        }
        with write_transaction(self.schema.database):
            if self._find(name, is_requester) is None:
                self._rows.insert(
                    party_name=name,
                    is_requester=is_requester,
                    last_successful_reconciliation_result=b"",
                    **changes,
                ).execute()
            else:
                self._update(name, is_requester, changes)
            return self._read(name, is_requester)

    def succeeded(
        self, party: X500Name | str, is_requester: bool, at_ms: int, missing_ids: Iterable[SecureHash]
    ) -> ReconciliationStatus:
        """Finished: DIFFERENCES_FOUND with the missing ids, or DIFFERENCES_NOT_FOUND; both column sets."""
        name = _name(party)
        result = encode_ids(missing_ids)
        status = (
            ReconciliationStatusValue.DIFFERENCES_FOUND
            if result
            else ReconciliationStatusValue.DIFFERENCES_NOT_FOUND
        )
        with write_transaction(self.schema.database):
            row = self._existing(name, is_requester)
            self._update(
                name,
                is_requester,
                {
                    "last_successful_reconciliation_time_started": row.last_reconciliation_time_started,
                    "last_successful_reconciliation_time_finished": at_ms,
                    "last_successful_reconciliation_status": status.value,
                    "last_successful_reconciliation_result": result,
                    "last_reconciliation_time_finished": at_ms,
                    "last_reconciliation_status": status.value,
                    "last_reconciliation_error": "",
                },
            )
            return self._read(name, is_requester)

    def failed(
        self, party: X500Name | str, is_requester: bool, at_ms: int, error: str
    ) -> ReconciliationStatus:
        """FAILED with a description of the error; last_successful_* untouched."""
        return self._finish(party, is_requester, at_ms, ReconciliationStatusValue.FAILED, error)

    def stopped(self, party: X500Name | str, is_requester: bool, at_ms: int) -> ReconciliationStatus:
        """STOPPED (StopReconciliationForPartyFlow); last_successful_* untouched."""
        return self._finish(party, is_requester, at_ms, ReconciliationStatusValue.STOPPED, "")

    def refresh(self, is_present: Callable[[SecureHash], bool]) -> int:
        """Drop ids now present from every result (RefreshReconciliationStatusesFlow); how many dropped."""
        rows = self._rows
        candidates = list(rows.select().where(rows.last_successful_reconciliation_result != b""))
        present: set[SecureHash] = set()
        asked: set[SecureHash] = set()
        # Ask the ledger outside the write transaction, each id once.
        for listed in candidates:
            for tx_id in decode_ids(listed.last_successful_reconciliation_result):
                if tx_id not in asked:
                    asked.add(tx_id)
                    if is_present(tx_id):
                        present.add(tx_id)
        if not present:
            return 0
        dropped = 0
        with write_transaction(self.schema.database):
            for candidate in candidates:
                # Read again: a reconciliation may have finished since.
                row = self._find(candidate.party_name, candidate.is_requester)
                if row is None:
                    continue
                ids = decode_ids(row.last_successful_reconciliation_result)
                kept = tuple(i for i in ids if i not in present)
                if len(kept) == len(ids):
                    continue
                dropped += len(ids) - len(kept)
                changes: dict[str, Any] = {"last_successful_reconciliation_result": encode_ids(kept)}
                if not kept:
                    not_found = ReconciliationStatusValue.DIFFERENCES_NOT_FOUND.value
                    changes["last_successful_reconciliation_status"] = not_found
                    if row.last_reconciliation_status == ReconciliationStatusValue.DIFFERENCES_FOUND.value:
                        changes["last_reconciliation_status"] = not_found
                self._update(row.party_name, row.is_requester, changes)
        return dropped

    # -- reads -------------------------------------------------------------------------------------

    def take_legacy_jobs(self) -> list[tuple[str, bool, int]]:
        """The rows of cr_reconciliation_jobs (the queue before the flow engine), removed as read.

        (party name, both directions, queued at ms), oldest first; the caller's unit of work makes
        them flows in the same database transaction.
        """
        jobs = self.schema.reconciliation_jobs
        with write_transaction(self.schema.database):
            rows = list(jobs.select().order_by(jobs.queued_at_ms, jobs.party_name))
            jobs.delete().execute()
        return [(row.party_name, bool(row.both_directions), int(row.queued_at_ms)) for row in rows]

    def get(self, party: X500Name | str, is_requester: bool) -> ReconciliationStatus | None:
        """GetReconciliationStatusForPartyFlow: the status, or None if there is none."""
        row = self._find(_name(party), is_requester)
        return None if row is None else _to_status(row)

    def query(
        self,
        party: X500Name | str | None = None,
        last_reconciliation_status: ReconciliationStatusValue | None = None,
        is_requester: bool = True,
    ) -> list[ReconciliationStatus]:
        """GetReconciliationStatusesFlow's filter; ordered by party name."""
        rows = self._rows
        query = rows.select().where(rows.is_requester == is_requester)
        if party is not None:
            query = query.where(rows.party_name == _name(party))
        if last_reconciliation_status is not None:
            query = query.where(rows.last_reconciliation_status == last_reconciliation_status.value)
        return [_to_status(row) for row in query.order_by(rows.party_name)]

    def summaries(self) -> list[dict[str, Any]]:
        """Per requester row, only what monitoring needs, read as plain tuples (a scrape over
        thousands of peers must not build a model object per row)."""
        rows = self._rows
        query: Any = (
            rows.select(
                rows.party_name,
                rows.last_reconciliation_status,
                rows.last_successful_reconciliation_time_finished,
                rows.last_successful_reconciliation_result,
            )
            .where(rows.is_requester)
            .order_by(rows.party_name)
            .tuples()
        )
        out = []
        for party, last, finished, result in query:
            raw = bytes(result or b"")
            out.append(
                {
                    "partyName": party,
                    "lastReconciliationStatus": last,
                    "lastSuccessfulReconciliationTimeFinished": finished,
                    "lastSuccessfulReconciliationResult": [
                        raw[i : i + _ID_SIZE].hex().upper() for i in range(0, len(raw), _ID_SIZE)
                    ],
                }
            )
        return out

    def number_in_progress(self) -> int:
        return self._count(ReconciliationStatusValue.IN_PROGRESS)

    def number_failed(self) -> int:
        return self._count(ReconciliationStatusValue.FAILED)

    def number_with_differences(self) -> int:
        return self._count(ReconciliationStatusValue.DIFFERENCES_FOUND)

    def number_without_differences(self) -> int:
        return self._count(ReconciliationStatusValue.DIFFERENCES_NOT_FOUND)

    def failed_parties(self) -> list[str]:
        return self._parties(ReconciliationStatusValue.FAILED)

    def parties_with_difference(self) -> list[str]:
        return self._parties(ReconciliationStatusValue.DIFFERENCES_FOUND)

    # -- helpers -----------------------------------------------------------------------------------

    def _requester_rows(self, status: ReconciliationStatusValue) -> Any:
        rows = self._rows
        return rows.select().where(rows.is_requester & (rows.last_reconciliation_status == status.value))

    def _count(self, status: ReconciliationStatusValue) -> int:
        return int(self._requester_rows(status).count())

    def _parties(self, status: ReconciliationStatusValue) -> list[str]:
        rows = self._rows
        query: Any = (
            rows.select(rows.party_name)
            .where(rows.is_requester & (rows.last_reconciliation_status == status.value))
            .order_by(rows.party_name)
            .tuples()
        )
        return [str(name) for (name,) in query]

    def _key(self, name: str, is_requester: bool) -> Any:
        rows = self._rows
        return (rows.party_name == name) & (rows.is_requester == is_requester)

    def _find(self, name: str, is_requester: bool) -> ReconciliationStatusRow | None:
        row: ReconciliationStatusRow | None = self._rows.get_or_none(self._key(name, is_requester))
        return row

    def _existing(self, name: str, is_requester: bool) -> ReconciliationStatusRow:
        row = self._find(name, is_requester)
        if row is None:
            direction = "requested by this node" if is_requester else "requested by that party"
            raise StoreError(f"no reconciliation with {name} ({direction}) has started")
        return row

    def _read(self, name: str, is_requester: bool) -> ReconciliationStatus:
        return _to_status(self._existing(name, is_requester))

    def _update(self, name: str, is_requester: bool, changes: dict[str, Any]) -> None:
        self._rows.update(**changes).where(self._key(name, is_requester)).execute()

    def _finish(
        self,
        party: X500Name | str,
        is_requester: bool,
        at_ms: int,
        status: ReconciliationStatusValue,
        error: str,
    ) -> ReconciliationStatus:
        name = _name(party)
        with write_transaction(self.schema.database):
            self._existing(name, is_requester)
            self._update(
                name,
                is_requester,
                {
                    "last_reconciliation_time_finished": at_ms,
                    "last_reconciliation_status": status.value,
                    "last_reconciliation_error": error,
                },
            )
            return self._read(name, is_requester)


def _to_status(row: ReconciliationStatusRow) -> ReconciliationStatus:
    last = _status(row.last_reconciliation_status)
    assert last is not None  # the column is NOT NULL
    return ReconciliationStatus(
        party_name=row.party_name,
        is_requester=bool(row.is_requester),
        state_machine_run_id=row.state_machine_id,
        last_successful_reconciliation_time_started=row.last_successful_reconciliation_time_started,
        last_successful_reconciliation_time_finished=row.last_successful_reconciliation_time_finished,
        last_successful_reconciliation_status=_status(row.last_successful_reconciliation_status),
        last_successful_reconciliation_result=decode_ids(row.last_successful_reconciliation_result),
        last_reconciliation_time_started=row.last_reconciliation_time_started,
        last_reconciliation_time_finished=row.last_reconciliation_time_finished,
        last_reconciliation_status=last,
        last_reconciliation_error=row.last_reconciliation_error,
    )


class RequestWindowRepository:
    """cr_reconciliation_requests: one row per admitted request, so the limit survives a restart."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def admit_within(self, party_name: str, now_ms: int, since_ms: int, allowed: int) -> int | None:
        requests = self.schema.reconciliation_requests
        with write_transaction(self.schema.database):
            requests.delete().where(
                (requests.party_name == party_name) & (requests.requested_at_ms <= since_ms)
            ).execute()
            used = int(requests.select().where(requests.party_name == party_name).count())
            if used >= allowed:
                return used
            requests.insert(party_name=party_name, requested_at_ms=now_ms).execute()
        return None
