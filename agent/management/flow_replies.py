"""The JSON reply of `POST /api/flows/start/<Flow>`: {"flow", "result", "text"}.

A ReconciliationResult's id lists are written as bytes straight from its sorted arrays, and
streamed a part at a time (`SecureHashes.json_array_parts`, with the Content-Length known before):
a reconciliation that found 100,000 missing transactions made, through jsonify, a str per id and
the JSON twice over (some 26 MB in the agent for a 6.7 MB reply).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from typing import Any

from flask import Response, jsonify

from agent.ledger.hashing import SecureHash
from agent.ledgersync.idset import IdSet, SecureHashes
from agent.ledgersync.protocol import ReconciliationResult
from agent.management.commands import result_json


def flow_reply(flow: str, result: Any, text: str) -> Response:
    """The reply to a flow that returned result, which the shell prints as text."""
    if not isinstance(result, ReconciliationResult):
        return jsonify(flow=flow, result=result_json(result), text=text)
    plain = result.as_dict(ids=False)
    here, there = _hashes(result.missing_here), _hashes(result.missing_there)
    head = b'{"flow":' + _dumps(flow) + b',"result":{"missingHere":'
    middle = b',"missingThere":'
    tail = b"," + _dumps(plain)[1:] + b',"text":' + _dumps(text) + b"}"  # the other fields, closed

    def parts() -> Iterator[bytes]:
        yield head
        yield from here.json_array_parts()
        yield middle
        yield from there.json_array_parts()
        yield tail

    length = len(head) + here.json_array_length() + len(middle) + there.json_array_length() + len(tail)
    reply = Response(parts(), mimetype="application/json")
    reply.headers["Content-Length"] = str(length)
    return reply


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _hashes(ids: AbstractSet[SecureHash]) -> SecureHashes:
    return ids if isinstance(ids, SecureHashes) else SecureHashes(IdSet.of(ids))
