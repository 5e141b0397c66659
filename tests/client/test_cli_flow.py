"""`ledger-agent flow start`'s argument syntax: the Corda shell's `name: value, ...`."""

from __future__ import annotations

import pytest

from agent.client.arguments import parse_flow_arguments
from agent.client.cli import main
from agent.errors import ConfigurationError


def test_the_shells_syntax_reads_names_lists_and_booleans() -> None:
    assert parse_flow_arguments([]) == {}
    assert parse_flow_arguments(['party: "O=PartyA, L=London, C=GB", isRequester: true']) == {
        "party": "O=PartyA, L=London, C=GB",
        "isRequester": True,
    }
    assert parse_flow_arguments(['parties: ["O=PartyA, L=London, C=GB", "O=PartyB, L=Ottawa, C=CA"]']) == {
        "parties": ["O=PartyA, L=London, C=GB", "O=PartyB, L=Ottawa, C=CA"]
    }
    # Words the shell split are joined again; an unquoted status is a plain word.
    assert parse_flow_arguments(["lastReconciliationStatus:", "IN_PROGRESS,", "isRequester:", "false"]) == {
        "lastReconciliationStatus": "IN_PROGRESS",
        "isRequester": False,
    }


@pytest.mark.parametrize("text", ['party: "O=PartyA', "[1, 2]", "party: {x: [}"])
def test_malformed_arguments_are_refused_naming_the_syntax(text: str) -> None:
    with pytest.raises(ConfigurationError, match="flow arguments"):
        parse_flow_arguments([text])


def test_flow_start_without_a_config_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["flow", "start", "--config", "/nonexistent/node.conf", "RefreshReconciliationStatusesFlow"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("ledger-agent: error: ") and "node.conf" in err and "Traceback" not in err
