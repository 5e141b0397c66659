"""The flow hospital on a real engine and store (SQLite and PostgreSQL): real constraint violations,
budgets per checkpoint, observation, retry, restart, kill, and node.conf rules."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.clock import ManualClock
from agent.errors import HospitalizeFlowError
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowEngine, FlowHandle
from agent.flows.flow import Advance, Flow, FlowContext, StepOutcome
from agent.hospital.hospital import FlowHospital, PatientFilter
from agent.hospital.policy import parse_hospital_settings
from agent.hospital.records import OBSERVATION, RECOVERED, RETRY
from agent.store.ledger_store import LedgerStore

T0 = datetime(2026, 1, 2, tzinfo=UTC)
WAIT = 10.0  # real seconds a test waits for a condition before failing


@pytest.fixture
def store(database_url: str) -> Iterator[LedgerStore]:
    s = LedgerStore(database_url)
    yield s
    s.close()


class KeyFlow(Flow):
    """STARTED -> INSERTED (inserts an AES key row: a real primary-key violation if it exists) -> DONE;
    with state["sedate"], its second step asks to be kept for observation."""

    name = "KeyFlow"

    def __init__(self, state: dict[str, Any], store: LedgerStore) -> None:
        super().__init__(state)
        self.store = store

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        match progress_step:
            case "STARTED":
                key = str(self.state["key"])
                return Advance("INSERTED", effect=lambda: self._insert(key))
            case "INSERTED":
                if self.state.get("sedate") and not self.store.keys.aes_keys().get("cured"):
                    raise HospitalizeFlowError("waiting for the cure")
                second = self.state.get("second")
                if second is not None:
                    return Advance("DONE", done=True, result="done", effect=lambda: self._insert(str(second)))
                return Advance("DONE", done=True, result="done")
        raise AssertionError(progress_step)

    def _insert(self, key: str) -> None:
        self.store.schema.aes_encryption_keys.insert(key_id=key, key_material=b"m").execute()


class Ward:
    """An engine with its hospital on one store and a manual clock."""

    def __init__(self, store: LedgerStore, conf: dict[str, Any] | None = None) -> None:
        self.store = store
        self.clock = ManualClock(T0)
        self.engine = FlowEngine(store.checkpoints, store.unit, self.clock)
        self.engine.register(KeyFlow.name, lambda state: KeyFlow(state, store))
        settings = parse_hospital_settings(conf or {})
        self.hospital = FlowHospital(
            store.hospital, store.checkpoints, self.clock, settings, rng=random.Random(7)
        )
        self.hospital.attach(self.engine)

    def start(self, **state: Any) -> FlowHandle:
        return self.engine.start(KeyFlow(dict(state), self.store))

    def status(self, flow_id: str) -> FlowStatus:
        cp = self.store.checkpoints.get_checkpoint(flow_id)
        assert cp is not None
        return cp.status

    def wait_status(self, flow_id: str, status: FlowStatus) -> None:
        deadline = time.monotonic() + WAIT
        while self.status(flow_id) is not status:
            assert time.monotonic() < deadline, f"{flow_id} is {self.status(flow_id).name}, not {status.name}"
            time.sleep(0.05)  # polling the row against a deadline

    def wait_records(self, flow_id: str, n: int) -> None:
        handle = self.engine.handle(flow_id)
        assert handle is not None
        ok = handle.wait_for(lambda _: len(self.store.hospital.records([flow_id])) >= n, WAIT)
        assert ok, self.store.hospital.records([flow_id])

    def advance_to_retry(self, flow_id: str) -> None:
        """Move the clock to the flow's retry time and fire it."""
        handle = self.engine.handle(flow_id)
        assert handle is not None
        assert handle.wait_for(lambda _: self.engine.wake_at(flow_id) is not None, WAIT)
        wake = self.engine.wake_at(flow_id)
        assert wake is not None
        if wake > self.clock.now():
            self.clock.advance(wake - self.clock.now())
        self.engine.fire_due()

    def stop(self) -> None:
        self.engine.shutdown(5)


@pytest.fixture
def ward(store: LedgerStore) -> Iterator[Ward]:
    w = Ward(store)
    yield w
    w.stop()


def test_a_constraint_violation_is_retried_three_times_at_its_checkpoint_then_kept(ward: Ward) -> None:
    ward.store.keys.add_aes_keys({"taken": b"x"})
    handle = ward.start(key="taken")
    flow_id = handle.flow_id
    for n in (2, 3):  # the first retry is at once (no back-off), on the engine's own timer
        ward.wait_records(flow_id, n)
        ward.advance_to_retry(flow_id)
    ward.wait_records(flow_id, 4)
    assert handle.wait_for(
        lambda h: h.checkpoint is not None and h.checkpoint.status is FlowStatus.HOSPITALIZED, WAIT
    )
    records = ward.store.hospital.records([flow_id])
    assert [(r.staff, r.outcome) for r in records] == [
        ("DuplicateInsertSpecialist", RETRY),
        ("DuplicateInsertSpecialist", RETRY),
        ("DuplicateInsertSpecialist", RETRY),
        ("DatabaseEndocrinologist", OBSERVATION),
    ]
    # Corda's back-off: none the first time, then 10 to 120 s.
    delays = [r.delay_s for r in records[:3]]
    assert delays[0] == 0 and all(d is not None and 10 <= d <= 120 for d in delays[1:])
    assert all(r.error_type == "ConstraintViolationError" and r.step == "STARTED" for r in records)
    (patient,) = ward.hospital.patients()
    assert (patient.checkpoint.flow_id, patient.attempts, patient.diagnosis) == (
        flow_id,
        4,
        "OVERNIGHT_OBSERVATION",
    )
    assert ward.hospital.patients(PatientFilter(staff="DatabaseEndocrinologist", min_attempts=4))
    assert not ward.hospital.patients(PatientFilter(flow_name="FinalityFlow"))
    # The operator removes the row it collides with and retries: the flow goes on with a new budget.
    ward.store.schema.aes_encryption_keys.delete().execute()
    assert ward.engine.retry(flow_id)
    assert handle.result(WAIT) == "done"
    assert ward.store.hospital.records([flow_id]) == []  # completed: nothing left to look at
    assert ward.hospital.patients() == []


def test_progress_resets_the_budget_and_records_the_recovery(ward: Ward) -> None:
    # The second step collides twice, then the operator's fix lets it through: every step's budget
    # is its own (retries count per checkpoint).
    ward.store.keys.add_aes_keys({"second": b"x"})
    handle = ward.start(key="first", second="second")
    ward.wait_records(handle.flow_id, 2)  # the first retry is at once
    ward.store.schema.aes_encryption_keys.delete().where(
        ward.store.schema.aes_encryption_keys.key_id == "second"
    ).execute()
    ward.advance_to_retry(handle.flow_id)
    assert handle.result(WAIT) == "done"


def test_a_step_that_asks_is_kept_and_a_restart_retries_it(
    store: LedgerStore, caplog: pytest.LogCaptureFixture
) -> None:
    first = Ward(store)
    with caplog.at_level(logging.ERROR, logger="ledger_agent.hospital"):
        handle = first.start(key="k", sedate=True)
        first.wait_records(handle.flow_id, 1)
        assert handle.wait_for(
            lambda h: h.checkpoint is not None and h.checkpoint.status is FlowStatus.HOSPITALIZED, WAIT
        )
    assert any("kept for observation by SedationNurse" in r.getMessage() for r in caplog.records)
    with caplog.at_level(logging.WARNING, logger="ledger_agent.hospital"):
        (listed,) = first.hospital.log_patients()
    assert listed.checkpoint.flow_id == handle.flow_id
    assert any("1 patient(s)" in r.getMessage() and handle.flow_id in r.getMessage() for r in caplog.records)
    first.stop()

    store.keys.add_aes_keys({"cured": b"1"})
    second = Ward(store)
    try:
        (resumed,) = second.engine.resume_all()  # HOSPITALIZED goes back to RUNNABLE (Corda)
        assert resumed.flow_id == handle.flow_id and resumed.error is None
        # It may finish before we look: wait on its row, with a deadline.
        second.wait_status(handle.flow_id, FlowStatus.COMPLETED)
    finally:
        second.stop()


def test_kill_removes_the_records_and_a_killed_flow_never_returns(ward: Ward) -> None:
    handle = ward.start(key="k", sedate=True)
    ward.wait_records(handle.flow_id, 1)
    assert handle.wait_for(
        lambda h: h.checkpoint is not None and h.checkpoint.status is FlowStatus.HOSPITALIZED, WAIT
    )
    assert ward.engine.kill(handle.flow_id)
    # Caught in the tail of the step that hospitalised it (a loaded machine), the kill takes effect
    # when that step returns: waited for, as the engine promises.
    assert handle.wait_for(lambda h: h.done, WAIT)
    assert ward.status(handle.flow_id) is FlowStatus.KILLED
    assert ward.store.hospital.records([handle.flow_id]) == []
    assert not ward.engine.retry(handle.flow_id)  # KILLED: not the hospital's any more
    assert ward.hospital.patients(failed=True) == []


def test_pause_then_retry_a_patient(ward: Ward) -> None:
    handle = ward.start(key="k", sedate=True)
    ward.wait_records(handle.flow_id, 1)
    assert handle.wait_for(
        lambda h: h.checkpoint is not None and h.checkpoint.status is FlowStatus.HOSPITALIZED, WAIT
    )
    assert ward.engine.pause(handle.flow_id)
    assert ward.status(handle.flow_id) is FlowStatus.PAUSED
    (patient,) = ward.hospital.patients(PatientFilter(status=FlowStatus.PAUSED))
    assert patient.staff == "SedationNurse"
    ward.store.keys.add_aes_keys({"cured": b"1"})
    assert ward.engine.retry(handle.flow_id)
    assert handle.result(WAIT) == "done"


def test_a_node_conf_rule_decides_before_the_staff(store: LedgerStore) -> None:
    conf = {
        "flowHospital.rules": [
            {
                "match": "DatabaseError",
                "action": "retry",
                "maxAttempts": 2,
                "then": "fail",
                "backoff": {"initial": "1s", "factor": 2, "cap": "4s", "jitter": 0},
            }
        ]
    }
    ward = Ward(store, conf)
    try:
        store.keys.add_aes_keys({"taken": b"x"})
        handle = ward.start(key="taken")
        ward.wait_records(handle.flow_id, 1)  # a rule's back-off has no free first retry
        ward.advance_to_retry(handle.flow_id)
        ward.wait_records(handle.flow_id, 2)
        ward.advance_to_retry(handle.flow_id)
        with pytest.raises(Exception, match=r"UNIQUE|unique|duplicate"):
            handle.result(WAIT)
        assert ward.status(handle.flow_id) is FlowStatus.FAILED
        records = store.hospital.records([handle.flow_id])
        assert [(r.staff, r.outcome, r.delay_s) for r in records] == [
            ("rules[0]", RETRY, 1.0),  # initial * factor^n, no jitter
            ("rules[0]", RETRY, 2.0),
            ("rules[0]", "FAILED", None),
        ]
        (failed,) = ward.hospital.patients(failed=True)  # a failed flow keeps its history
        assert failed.checkpoint.status is FlowStatus.FAILED and failed.attempts == 3
    finally:
        ward.stop()


def test_a_recovery_is_recorded_and_ends_the_stay(ward: Ward) -> None:
    ward.store.keys.add_aes_keys({"taken": b"x"})
    # A flow with a second step that waits: after the first step recovers it is still running.
    handle = ward.start(key="taken", sedate=True)
    ward.wait_records(handle.flow_id, 2)  # retried at once, then waiting 10 s or more
    ward.store.schema.aes_encryption_keys.delete().execute()
    ward.advance_to_retry(handle.flow_id)
    ward.wait_records(handle.flow_id, 4)  # RETRY, RETRY, RECOVERED, then the sedation at INSERTED
    outcomes = [r.outcome for r in ward.store.hospital.records([handle.flow_id])]
    assert outcomes == [RETRY, RETRY, RECOVERED, OBSERVATION]
    (patient,) = ward.hospital.patients()
    assert patient.attempts == 1 and patient.staff == "SedationNurse"  # the new stay only
    assert patient.as_dict(ward.clock.now())["history"][2]["outcome"] == RECOVERED


def test_patients_age_counts_on_the_clock(ward: Ward) -> None:
    handle = ward.start(key="k", sedate=True)
    ward.wait_records(handle.flow_id, 1)
    ward.clock.advance(timedelta(minutes=3))
    (patient,) = ward.hospital.patients(PatientFilter(min_age_s=180))
    assert patient.age_s(ward.clock.now()) == 180
    assert ward.hospital.patients(PatientFilter(min_age_s=181)) == []


def test_the_patients_log_thread_ends_with_its_engine(store: LedgerStore) -> None:
    # A node that crashed in a simulation never calls hospital.stop(): its thread must not outlive
    # the engine (thousands of seeds would pile them up).
    ward = Ward(store)
    ward.hospital.start()
    logger = ward.hospital._logger
    assert logger is not None and logger.is_alive()
    ward.engine.shutdown(5)
    logger.join(WAIT)
    assert not logger.is_alive()
