"""The staff's diagnoses, the back-offs, and node.conf's flowHospital rules (pure: no store)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_node_config
from agent.errors import (
    ConfigurationError,
    ConstraintViolationError,
    DeadlockError,
    HospitalizeFlowError,
    NotaryConflictError,
    PeerRequestError,
    PeerUnreachableError,
    StoreError,
    TransientConnectionError,
    UnknownTopicError,
)
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.faults import InjectedFaultError
from agent.hospital.policy import parse_duration, parse_hospital_settings
from agent.hospital.staff import (
    Diagnosis,
    FlowTimeoutSettings,
    Patient,
    corda_backoff,
    default_staff,
    notary_backoff,
)

T0 = datetime(2026, 1, 2, tzinfo=UTC)
NOTARY = "O=Notary, L=Zurich, C=CH"
PEER = "O=PartyB, L=New York, C=US"


def patient(error: BaseException, flow_name: str = "FinalityFlow", **discharges: int) -> Patient:
    cp = FlowCheckpoint("f-1", flow_name, FlowStatus.RUNNABLE, T0, T0, "AFTER_BROADCAST")
    return Patient(cp, error, T0, discharges, T0, lambda name: name == NOTARY)


def best(p: Patient) -> tuple[str, Diagnosis, bool]:
    rng = random.Random(1)
    opinions = [member.consult(p, rng) for member in default_staff(FlowTimeoutSettings(timeout_s=2))]
    top = max(opinions, key=lambda c: c.diagnosis)  # max keeps the first of equals, as the hospital
    return top.staff, top.diagnosis, top.chronic


def test_each_member_sees_its_own_errors() -> None:
    deadlock = DeadlockError("deadlock detected", code="40P01")
    assert best(patient(deadlock)) == ("DeadlockNurse", Diagnosis.DISCHARGE, True)
    # A store error raised from a database error is read through its cause.
    wrapped = StoreError("could not record")
    wrapped.__cause__ = deadlock
    assert best(patient(wrapped))[0] == "DeadlockNurse"
    dup = ConstraintViolationError("duplicate key", code="23505")
    assert best(patient(dup)) == ("DuplicateInsertSpecialist", Diagnosis.DISCHARGE, False)
    assert best(patient(dup, DuplicateInsertSpecialist=3))[:2] == (
        "DatabaseEndocrinologist",
        Diagnosis.OVERNIGHT_OBSERVATION,
    )
    lost = TransientConnectionError("terminating connection", code="57P01")
    assert best(patient(lost, TransientConnectionCardiologist=1))[:2] == (
        "TransientConnectionCardiologist",
        Diagnosis.DISCHARGE,
    )
    assert best(patient(lost, TransientConnectionCardiologist=2))[:2] == (
        "TransientConnectionCardiologist",
        Diagnosis.OVERNIGHT_OBSERVATION,
    )
    notary_down = PeerUnreachableError(NOTARY, 3, OSError("refused"))
    assert best(patient(notary_down)) == ("DoctorTimeout", Diagnosis.DISCHARGE, True)
    peer_down = PeerUnreachableError(PEER, 3, OSError("refused"))
    assert best(patient(peer_down)) == ("UnreachablePeerNurse", Diagnosis.DISCHARGE, True)
    kept = PeerRequestError(PEER, "KeptForObservationError", "kept")
    assert best(patient(kept))[0] == "UnreachablePeerNurse"
    notary_broken = PeerRequestError(NOTARY, "DatabaseError", "the notary's store failed")
    assert best(patient(notary_broken)) == ("NotaryDoctor", Diagnosis.DISCHARGE, True)
    assert best(patient(HospitalizeFlowError("look")))[:2] == (
        "SedationNurse",
        Diagnosis.OVERNIGHT_OBSERVATION,
    )
    assert best(patient(UnknownTopicError("x.y")))[0] == "UnknownFlowSpecialist"


def test_finality_doctor_keeps_receivers_but_not_a_propagated_notary_failure() -> None:
    broken = InjectedFaultError("ReceiveFinalityFlow", "RECORDED")
    assert best(patient(broken, "ReceiveFinalityFlow"))[:2] == (
        "FinalityDoctor",
        Diagnosis.OVERNIGHT_OBSERVATION,
    )
    conflict = NotaryConflictError("AB" * 32, {"ref": "by"})
    assert best(patient(conflict, "ReceiveFinalityFlow"))[1] is Diagnosis.NOT_MY_SPECIALTY
    told = PeerRequestError(PEER, "NotaryConflictError", "conflict")
    assert best(patient(told, "ReceiveFinalityFlow"))[1] is Diagnosis.NOT_MY_SPECIALTY
    # The same injected failure in the initiator is nobody's specialty: it fails.
    assert best(patient(broken))[1] is Diagnosis.NOT_MY_SPECIALTY


def test_corda_backoff_is_none_first_then_between_10_and_120_s() -> None:
    rng = random.Random(3)
    assert corda_backoff(0, rng) == 0
    for n in range(1, 40):
        assert 10 <= corda_backoff(n, rng) <= 120
    # It grows towards the cap: 10 * 1.5^n / 2 passes 110 at n = 8.
    assert max(corda_backoff(12, random.Random(s)) for s in range(50)) > 100


def test_the_notary_timeout_grows_to_its_cap_and_never_stops() -> None:
    settings = FlowTimeoutSettings(timeout_s=30, max_restart_count=6, backoff_base=1.8)
    rng = random.Random(5)
    first = notary_backoff(0, settings, rng)
    assert 30 <= first <= 45
    cap = 30 * 1.8**6
    for n in (6, 7, 100):
        assert cap <= notary_backoff(n, settings, rng) <= cap * 1.5


def rules(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"flowHospital.rules": list(entries)}


@pytest.mark.parametrize(
    ("conf", "key", "allowed"),
    [
        (rules({"match": "Deadlock", "action": "retry"}), "flowHospital.rules[0].match", "error class"),
        (
            rules({"match": "DeadlockError", "action": "retyr"}),
            "flowHospital.rules[0].action",
            "retry, observe",
        ),
        (
            rules({"match": "DeadlockError", "action": "observe", "maxAttempts": 3}),
            "flowHospital.rules[0].maxAttempts",
            "only with action = retry",
        ),
        (
            rules({"match": "DeadlockError", "action": "retry", "maxAttempts": 0}),
            "flowHospital.rules[0].maxAttempts",
            "1 to 1000000",
        ),
        (
            rules({"match": "DeadlockError", "action": "retry", "then": "retry"}),
            "flowHospital.rules[0].then",
            "observe, fail, kill",
        ),
        (
            rules({"match": "DeadlockError", "action": "retry", "backoff": {"initial": "10s", "cap": "5s"}}),
            "flowHospital.rules[0].backoff.cap",
            "at least backoff.initial",
        ),
        (
            rules({"match": "DeadlockError", "action": "retry", "backoff": {"factor": 0.5}}),
            "flowHospital.rules[0].backoff.factor",
            "from 1 to 10",
        ),
        (
            rules({"match": "DeadlockError", "action": "retry", "backoff": {"jitter": 2}}),
            "flowHospital.rules[0].backoff.jitter",
            "from 0 to 1",
        ),
        (
            rules({"match": "DeadlockError", "action": "retry", "maxDuration": "soon"}),
            "flowHospital.rules[0].maxDuration",
            "a duration",
        ),
        (
            rules({"match": "DeadlockError", "action": "retry", "when": "always"}),
            "flowHospital.rules[0].when",
            "unknown key",
        ),
        ({"flowTimeout.timeout": "0s"}, "flowTimeout.timeout", "above 0"),
        ({"flowTimeout.maxRestartCount": -1}, "flowTimeout.maxRestartCount", "0 to 100"),
        ({"flowHospital.patientsLogInterval": "1 minute"}, "flowHospital.patientsLogInterval", "a duration"),
    ],
)
def test_a_bad_policy_is_refused_with_the_key_and_what_is_allowed(
    conf: dict[str, Any], key: str, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as err:
        parse_hospital_settings(conf)
    assert err.value.key == key
    assert allowed in err.value.allowed


def test_a_good_policy_reads_as_written() -> None:
    settings = parse_hospital_settings(
        {
            **rules(
                {
                    "match": "DeadlockError",
                    "action": "retry",
                    "maxAttempts": 20,
                    "then": "fail",
                    "backoff": {"initial": "500ms", "factor": 2, "cap": "1m", "jitter": 0},
                },
                {"match": "Exception", "flowName": "PayTokensFlow", "action": "observe"},
                {"match": "TransientConnectionError", "action": "retry"},
            ),
            "flowHospital.patientsLogInterval": timedelta(minutes=2),  # pyhocon's own reading of 2m
            "flowTimeout.timeout": "1s",
        }
    )
    first, second, third = settings.rules
    assert (first.backoff.initial_s, first.backoff.cap_s, first.max_attempts, first.then) == (
        0.5,
        60,
        20,
        "fail",
    )
    assert second.flow_name == "PayTokensFlow" and not second.retries_for_ever
    assert third.retries_for_ever  # neither maxAttempts nor maxDuration: the FlowRetryLoop alert's case
    assert settings.patients_log_interval_s == 120 and settings.flow_timeout.timeout_s == 1


def test_durations() -> None:
    assert [parse_duration("k", v) for v in (5, 1.5, "250ms", "30s", "10m", "1h", "1d")] == [
        5,
        1.5,
        0.25,
        30,
        600,
        3600,
        86400,
    ]
    with pytest.raises(ConfigurationError):
        parse_duration("k", -1)


def test_node_conf_carries_the_hospital_section(tmp_path: Path) -> None:
    conf = tmp_path / "node.conf"
    base = """
        myLegalName = "O=PartyA, L=London, C=GB"
        p2pAddress = "127.0.0.1:10002"
        managementAddress = "127.0.0.1:10003"
        dataSourceProperties.dataSource.url = "sqlite:///node.db"
        networkMapFile = "network-map.cbor"
    """
    conf.write_text(
        base
        + """
        flowHospital { rules = [ { match = DeadlockError, action = retry, maxAttempts = 5 } ] }
        flowTimeout { timeout = 2s, backoffBase = 1.5 }
    """
    )
    config = load_node_config(conf)
    (rule,) = config.hospital.rules
    assert (rule.match, rule.max_attempts) == ("DeadlockError", 5)
    assert (config.hospital.flow_timeout.timeout_s, config.hospital.flow_timeout.backoff_base) == (2, 1.5)
    conf.write_text(base + "flowHospital { rules = [ { match = DeadlockError, action = sometimes } ] }")
    with pytest.raises(ConfigurationError, match=r"flowHospital.rules\[0\].action: 'sometimes'"):
        load_node_config(conf)
