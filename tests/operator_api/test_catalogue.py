"""The catalogue's pure side, which the operator tools import: what each kind of parameter accepts,
and how results print. (That every entry runs on a node: tests/management/test_commands.py.)"""

from __future__ import annotations

import pytest

from agent.ledger.hashing import SecureHash
from agent.management.commands import result_text as agent_result_text
from agent.operator_api.catalogue import KINDS
from agent.operator_api.flows import result_text
from agent.operator_api.kinds import filter_problem
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue

NAME = "O=PartyB, L=London, C=GB"


@pytest.mark.parametrize(
    ("kind", "accepted", "refused"),
    [
        ("party", [NAME], [[NAME], None, 3]),
        ("parties", [[NAME]], [[], NAME, [3]]),
        ("observers", [[], [NAME]], [NAME, [3]]),
        ("bool", [True, False], ["true", 1]),
        ("status", ["FAILED", "STOPPED"], ["DONE", ["FAILED"], 3]),
        ("method", ["riblt", "list"], ["carrier-pigeon", ["riblt"]]),
        (
            "holdings",
            [[{"owner": NAME, "amount": 5}]],
            [[], [{"owner": NAME}], [{"owner": NAME, "amount": True}]],
        ),
        ("amount", [1, 500], [0, -1, 1.5, True, "5"]),
        ("currency", ["GBP"], ["", 3]),
        ("seconds", [0, 2.5, 3600], [-1, 3601, True, "60"]),
        ("flowStatus", ["RUNNABLE", "PAUSED"], ["DONE", ["FAILED"]]),
        ("txId", ["AB" * 32], ["AB", "zz" * 32, 3]),
        ("reason", ["the contract is installed"], ["", "   ", None, 3, "x" * 1001]),
        ("bulkAction", ["retry", "pause", "kill"], ["resume", "", None, ["kill"]]),
        ("batchSize", [1, 1000], [0, 1001, 2.5, True]),
        ("limit", [1, 10_000], [0, 10_001, "5"]),
        (
            "flowFilter",
            [
                {},
                {
                    "status": "PAUSED",
                    "minAgeSeconds": 60.5,
                    "minAttempts": 2,
                    "underCare": True,
                    "peer": NAME,
                },
            ],
            [
                [],
                {"colour": "red"},
                {"status": "DONE"},
                {"diagnosis": "BAD"},
                {"minAgeSeconds": -1},
                {"minAttempts": 1.5},
                {"underCare": "yes"},
                {"staff": ""},
            ],
        ),
    ],
)
def test_each_kind_accepts_what_it_says_it_allows(
    kind: str, accepted: list[object], refused: list[object]
) -> None:
    accepts, allowed = KINDS[kind]
    assert allowed
    assert all(accepts(v) for v in accepted), kind
    assert not any(accepts(v) for v in refused), kind


def test_a_bad_filter_is_refused_naming_its_key_and_what_it_allows() -> None:
    assert filter_problem({"diagnosis": "BAD"}) == (
        "filter diagnosis: 'BAD'; allowed: one of RESUSCITATE, TERMINAL, DISCHARGE, OVERNIGHT_OBSERVATION, "
        "NOT_MY_SPECIALTY"
    )
    assert filter_problem({"colour": "red"}) == (
        "unknown filter 'colour'; filters: status, diagnosis, staff, errorType, flowName, peer, step, "
        "minAgeSeconds, minAttempts, underCare"
    )
    assert filter_problem({"status": None}) is None  # null: not given


def _status(ids: tuple[SecureHash, ...]) -> ReconciliationStatus:
    return ReconciliationStatus(
        party_name="O=PartyB, L=London, C=GB",
        is_requester=True,
        state_machine_run_id="run-1",
        last_successful_reconciliation_time_started=1,
        last_successful_reconciliation_time_finished=2,
        last_successful_reconciliation_status=ReconciliationStatusValue.DIFFERENCES_FOUND,
        last_successful_reconciliation_result=ids,
        last_reconciliation_time_started=1,
        last_reconciliation_time_finished=2,
        last_reconciliation_status=ReconciliationStatusValue.DIFFERENCES_FOUND,
        last_reconciliation_error='a "quoted"\nerror',
    )


@pytest.mark.parametrize(
    "result",
    [None, True, False, 7, "text", [], [True, None], _status((SecureHash.of(b"a"), SecureHash.of(b"b")))],
)
def test_results_print_on_the_tools_as_on_the_agent(result: object) -> None:
    assert result_text(result) == agent_result_text(result)
    assert result_text(result, unit=True) == agent_result_text(result, unit=True) == "kotlin.Unit"


def test_a_status_read_back_from_its_json_is_the_same_status() -> None:
    status = _status((SecureHash.of(b"a"),))
    assert ReconciliationStatus.from_dict(status.as_dict()) == status
