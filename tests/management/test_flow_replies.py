"""The reply of POST /api/flows/start: a ReconciliationResult's ids written as bytes, as jsonify would."""

from __future__ import annotations

import json
import random

import pytest
from flask import Flask

from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync.idset import IdSet, SecureHashes
from agent.ledgersync.protocol import ReconciliationResult
from agent.management.flow_replies import flow_reply

PARTY = X500Name.parse("O=PartyB, L=New York, C=US")


@pytest.mark.parametrize(("here", "there"), [(0, 0), (1, 0), (3, 2), (70_000, 1)])
def test_the_reply_is_what_jsonify_made(here: int, there: int) -> None:
    rng = random.Random(here)
    ids = [SecureHash(rng.randbytes(32)) for _ in range(here + there)]
    result = ReconciliationResult(
        PARTY, SecureHashes(IdSet.of(ids[:here])), set(ids[here:]), 100, 2000, 2, (), False
    )
    with Flask(__name__).app_context():
        reply = flow_reply("ReconcileWithPartyFlow", result, "done")
    assert reply.mimetype == "application/json"
    assert int(reply.headers["Content-Length"]) == len(reply.get_data())  # streamed, its length told first
    assert json.loads(reply.get_data()) == {
        "flow": "ReconcileWithPartyFlow",
        "result": result.as_dict(),
        "text": "done",
    }


def test_other_results_go_through_jsonify() -> None:
    with Flask(__name__).app_context():
        reply = flow_reply("IsReconciliationScheduledForPartyFlow", True, "true")
    assert json.loads(reply.get_data()) == {
        "flow": "IsReconciliationScheduledForPartyFlow",
        "result": True,
        "text": "true",
    }
