"""The YAML block after FlowTransactionInfo's line: the reference's shape, and valid YAML."""

from __future__ import annotations

import yaml

from agent.operator_api.recovery import flow_transaction_report, flow_transaction_yaml

INFO = {
    "stateMachineRunId": "e0d781be-b4ab-43e0-b694-e97cc4eaa6ee",
    "txId": "19BE64484D3CBF532A8FB2ACA1AEACA38B1FBA3C38B0518B7F5316AC9E79432F",
    "status": "IN_FLIGHT",
    "timestamp": "2023-03-29T11:16:29.477+00:00",
    "initiator": "O=Alice Corp, L=Madrid, C=ES",
    # The second is no valid X.500 name (a quote): it tests the quoting.
    "peers": ["O=Bob Plc, L=Rome, C=IT", 'O=Zoë "Z" Ltd, L=Zürich, C=CH'],
}


def test_an_initiators_block_lists_its_peers_as_x500_principals() -> None:
    text = flow_transaction_yaml(INFO)
    assert text.splitlines()[:9] == [
        "---",
        "- stateMachineRunId:",
        '    uuid: "e0d781be-b4ab-43e0-b694-e97cc4eaa6ee"',
        '  txId: "19BE64484D3CBF532A8FB2ACA1AEACA38B1FBA3C38B0518B7F5316AC9E79432F"',
        '  status: "IN_FLIGHT"',
        "  initiator:",
        "    x500Principal:",
        '      name: "O=Alice Corp,L=Madrid,C=ES"',
        "  peers:",
    ]
    assert yaml.safe_load(text) == [
        {
            "stateMachineRunId": {"uuid": INFO["stateMachineRunId"]},
            "txId": INFO["txId"],
            "status": "IN_FLIGHT",
            "initiator": {"x500Principal": {"name": "O=Alice Corp,L=Madrid,C=ES"}},
            "peers": [
                {"x500Principal": {"name": "O=Bob Plc,L=Rome,C=IT"}},
                {"x500Principal": {"name": 'O=Zoë "Z" Ltd,L=Zürich,C=CH'}},
            ],
        }
    ]


def test_a_receivers_peers_are_null_and_none_prints_null_alone() -> None:
    text = flow_transaction_yaml({**INFO, "peers": None})
    assert text.splitlines()[-1] == "  peers: null"
    assert yaml.safe_load(text)[0]["peers"] is None
    assert yaml.safe_load(flow_transaction_yaml({**INFO, "stateMachineRunId": None, "initiator": None})) == [
        {
            "stateMachineRunId": None,
            "txId": INFO["txId"],
            "status": "IN_FLIGHT",
            "initiator": None,
            "peers": [
                {"x500Principal": {"name": "O=Bob Plc,L=Rome,C=IT"}},
                {"x500Principal": {"name": 'O=Zoë "Z" Ltd,L=Zürich,C=CH'}},
            ],
        }
    ]
    report = flow_transaction_report(INFO).splitlines()
    assert report[0].startswith("FlowTransactionInfo(") and report[1] == "---"
    assert flow_transaction_report(None) == "null"
