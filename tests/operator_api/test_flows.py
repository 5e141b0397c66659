"""The operator tools' declarations of the flows against the agent's catalogue: one contract, two sides.

agent.flows.catalogue runs the flows; agent.operator_api.flows declares them for the clients, which
must not import the catalogue (it loads LedgerSync). Until the catalogue builds its flows from the
declarations, this test keeps the two from drifting apart.
"""

from __future__ import annotations

import pytest

from agent.flows import catalogue
from agent.ledger.hashing import SecureHash
from agent.operator_api import flows
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue


def test_every_flow_is_declared_as_the_catalogue_runs_it_in_the_same_order() -> None:
    assert list(flows.FLOWS) == list(catalogue.OPERATOR_FLOWS)
    for name, declared in flows.FLOWS.items():
        runs = catalogue.OPERATOR_FLOWS[name]
        assert (declared.operation, declared.unit, declared.act) == (runs.operation, runs.unit, runs.act)
        assert [(p.name, p.kind, p.required, p.default) for p in declared.params] == [
            (p.name, p.kind, p.required, p.default) for p in runs.params
        ], name


def test_each_kind_accepts_and_words_what_it_allows_as_the_catalogue_does() -> None:
    assert flows.KINDS.keys() == catalogue.KINDS.keys()
    samples = ["O=PartyB, L=London, C=GB", ["O=PartyB, L=London, C=GB"], [], True, "FAILED", "riblt", 3, None]
    for kind, (accepts, allowed) in flows.KINDS.items():
        assert allowed == catalogue.KINDS[kind][1], kind
        assert [accepts(s) for s in samples] == [catalogue.KINDS[kind][0](s) for s in samples], kind


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
def test_results_print_as_the_catalogue_prints_them(result: object) -> None:
    assert flows.result_text(result) == catalogue.result_text(result)
    assert flows.result_text(result, unit=True) == catalogue.result_text(result, unit=True) == "kotlin.Unit"


def test_a_status_read_back_from_its_json_is_the_same_status() -> None:
    status = _status((SecureHash.of(b"a"),))
    assert ReconciliationStatus.from_dict(status.as_dict()) == status
