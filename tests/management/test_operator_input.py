"""Operator input the agent refuses by name (issue 16, item 9): reconciling with a party off the network
map (404) or with the notary (400), tokens to the notary, amounts out of 1 to 2^63 - 1, currency codes
that are not codes; each answer names the field and what is allowed, and nothing is started.

PartyA is served (REST and JSON-RPC, tests.management.conftest); PartyB, PartyC and the notary run
beside it on the in-process network.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from jsonrpcclient import Error, parse, request

from agent.errors import InvalidArgumentError
from agent.ledger.identity import X500Name
from agent.ledger.vault import TransactionStatus
from agent.network.bootstrap import DEFAULT_NOTARY
from agent.operator_api.amounts import MAX_AMOUNT
from tests.management.conftest import Served, rest

NOTARY = str(DEFAULT_NOTARY)
STRANGER = "O=Nobody, L=Oslo, C=NO"
RANGE = f"from 1 to {MAX_AMOUNT}"


def me(served: Served) -> str:
    return str(served.runtime.node.identity.name)


def peer(served: Served) -> str:
    return sorted(str(p) for p in served.peers if str(p) != NOTARY)[0]


def verified(served: Served) -> int:
    return served.runtime.node.store.transactions.count_transactions(TransactionStatus.VERIFIED)


def start(served: Served, flow: str, body: dict[str, Any]) -> requests.Response:
    return rest(served, "POST", f"/api/flows/start/{flow}", body)


def refused(reply: requests.Response, status: int, *words: str) -> str:
    assert reply.status_code == status, reply.text
    message = str(reply.json()["message"])
    for word in words:
        assert word in message, (word, message)
    return message


def test_reconciling_with_a_party_off_the_network_map_is_404_and_nothing_is_scheduled(
    served_network: Served,
) -> None:
    served = served_network
    for flow, body in (
        ("ScheduleReconciliationFlow", {"parties": [peer(served), STRANGER]}),
        ("ReconcileWithPartyFlow", {"party": STRANGER}),
    ):
        reply = start(served, flow, body)
        refused(reply, 404, STRANGER, "not in the network map")
        assert reply.json()["error"] == "IdentityError"
    # All or none: the good party of the refused schedule was not scheduled either, and no status was kept.
    for party in (peer(served), STRANGER):
        asked = start(served, "IsReconciliationScheduledForPartyFlow", {"party": party})
        assert asked.json()["result"] is False
        status = start(served, "GetReconciliationStatusForPartyFlow", {"party": party})
        assert status.json()["result"] is None


def test_reconciling_with_the_notary_is_refused_naming_why_and_the_notary_is_not_asked(
    served_network: Served,
) -> None:
    served = served_network
    scheduled = start(served, "ScheduleReconciliationFlow", {"parties": [NOTARY]})
    refused(scheduled, 400, "parties[0]", NOTARY, "the notary, which holds no ledger to reconcile")
    direct = start(served, "ReconcileWithPartyFlow", {"party": NOTARY})
    refused(direct, 400, "'party'", "the notary, which holds no ledger to reconcile")
    reply = requests.post(
        served.url + "/rpc",
        json=request("LedgerSync.ScheduleReconciliation", params={"parties": [NOTARY]}),
        auth=served.operator,
        timeout=30,
    )
    answer = parse(reply.json())
    assert isinstance(answer, Error) and answer.code == -32002, answer  # IllegalArgumentException
    assert "holds no ledger to reconcile" in answer.message
    # Before, the notary got the session and kept an UnhandledSessionFlow in its hospital.
    assert served.peers[DEFAULT_NOTARY].engine.flows() == []
    assert start(served, "IsReconciliationScheduledForPartyFlow", {"party": NOTARY}).json()["result"] is False


def test_tokens_to_the_notary_are_refused_naming_the_field_and_why(served_network: Served) -> None:
    served = served_network
    before = verified(served)
    to_notary = {"holdings": [{"owner": peer(served), "amount": 5}, {"owner": NOTARY, "amount": 5}]}
    issued = rest(served, "POST", "/api/flows/issue", {**to_notary, "currency": "GBP"})
    refused(issued, 400, "holdings[1].owner", NOTARY, "the notary, which keeps no vault")
    seen = rest(
        served,
        "POST",
        "/api/flows/issue",
        {"holdings": [{"owner": me(served), "amount": 5}], "currency": "GBP", "observers": [NOTARY]},
    )
    refused(seen, 400, "observers[0]", "the notary")
    assert verified(served) == before
    rest(
        served,
        "POST",
        "/api/flows/issue",
        {"holdings": [{"owner": me(served), "amount": 5}], "currency": "GBP"},
    )
    paid = rest(
        served,
        "POST",
        "/api/flows/pay",
        {"to": NOTARY, "amount": 5, "currency": "GBP", "issuer": me(served)},
    )
    refused(paid, 400, "'to'", NOTARY, "the notary, which keeps no vault")
    assert [h["amount"] for h in rest(served, "GET", "/api/vault").json()["holdings"]] == [5]
    assert (
        served.peers[DEFAULT_NOTARY].node.store.transactions.count_transactions(TransactionStatus.VERIFIED)
        == 0
    )


@pytest.mark.parametrize("amount", [0, -1, -(2**63), MAX_AMOUNT + 1, 2**64])
def test_amounts_outside_1_to_2_63_minus_1_are_400_naming_the_field_and_the_range(
    served_network: Served, amount: int
) -> None:
    served = served_network
    before = verified(served)
    issue = {"holdings": [{"owner": me(served), "amount": 1}, {"owner": me(served), "amount": amount}]}
    refused(
        rest(served, "POST", "/api/flows/issue", {**issue, "currency": "GBP"}),
        400,
        "holdings[1].amount",
        RANGE,
    )
    pay = {"to": peer(served), "amount": amount, "currency": "GBP", "issuer": me(served)}
    refused(rest(served, "POST", "/api/flows/pay", pay), 400, "'amount'", RANGE)
    refused(
        rest(served, "POST", "/api/flows/exit", {"amount": amount, "currency": "GBP"}), 400, "'amount'", RANGE
    )
    assert verified(served) == before


def test_the_largest_amount_is_accepted(served_network: Served) -> None:
    served = served_network
    body = {"holdings": [{"owner": me(served), "amount": MAX_AMOUNT}], "currency": "GBP"}
    assert rest(served, "POST", "/api/flows/issue", body).status_code == 200
    assert rest(served, "GET", "/api/vault").json()["holdings"][0]["amount"] == MAX_AMOUNT


@pytest.mark.parametrize("currency", ["G" * 10_000, "gbp", "GB", "G" * 13, "1AB", "GB P", "ĞBP", ""])
def test_a_currency_that_is_not_a_code_is_400_naming_the_form(served_network: Served, currency: str) -> None:
    served = served_network
    body = {"holdings": [{"owner": me(served), "amount": 5}], "currency": currency}
    message = refused(rest(served, "POST", "/api/flows/issue", body), 400, "'currency'", "3 to 12 characters")
    assert len(message) < 1000  # the 10,000 characters are not echoed back
    pay = {"to": peer(served), "amount": 1, "currency": currency, "issuer": me(served)}
    refused(rest(served, "POST", "/api/flows/pay", pay), 400, "'currency'")


@pytest.mark.parametrize("currency", ["GBP", "R01", "USDC", "ABCDEFGHIJKL"])
def test_iso_codes_and_short_codes_of_ones_own_are_accepted(served_network: Served, currency: str) -> None:
    served = served_network
    body = {"holdings": [{"owner": peer(served), "amount": 5}], "currency": currency}
    assert rest(served, "POST", "/api/flows/issue", body).status_code == 200


def test_the_token_service_itself_refuses_by_field(served_network: Served) -> None:
    # Callers in code go through the same checks (a bad argument, not a bare AgentError answered 409).
    tokens = served_network.runtime.tokens
    other = X500Name.parse(peer(served_network))
    with pytest.raises(InvalidArgumentError) as zero:
        tokens.pay(other, 0, "GBP", served_network.runtime.node.identity.name)
    assert zero.value.field == "amount" and RANGE in zero.value.allowed
    with pytest.raises(InvalidArgumentError) as notary:
        tokens.issue([(DEFAULT_NOTARY, 5)], "GBP")
    assert notary.value.field == "holdings[0].owner"
    with pytest.raises(InvalidArgumentError) as code:
        tokens.exit(5, "x" * 10_000)
    assert code.value.field == "currency" and len(str(code.value)) < 1000
