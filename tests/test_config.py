"""node.conf: HOCON, strict about unknown keys and bad values, every error naming the key."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import DEFAULT_MANAGEMENT_THREADS, DEFAULT_P2P_THREADS, load_node_config
from agent.errors import ConfigurationError

GOOD = """
myLegalName = "O=PartyA, L=London, C=GB"
p2pAddress = "127.0.0.1:10002"
managementAddress = "127.0.0.1:10003"
dataSourceProperties { dataSource.url = "sqlite:///node.db" }
networkMapFile = "../network-map.json"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.conf"
    path.write_text(text)
    return path


def test_a_good_config_is_typed(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, GOOD + "notary { validating = false }\n"))
    assert str(config.my_legal_name) == "O=PartyA, L=London, C=GB"
    assert config.p2p_address == ("127.0.0.1", 10002)
    assert config.database_url == "sqlite:///node.db"
    assert config.certificates_directory == tmp_path / "certificates"
    assert config.network_map_file == (tmp_path / "../network-map.json")
    assert config.notary is True
    assert config.notary_validating is False
    assert load_node_config(write(tmp_path, GOOD)).notary is False


def test_the_listeners_thread_pools(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, GOOD))
    assert (config.p2p_threads, config.management_threads) == (
        DEFAULT_P2P_THREADS,
        DEFAULT_MANAGEMENT_THREADS,
    )
    config = load_node_config(write(tmp_path, GOOD + "p2pThreads = 4\nmanagementThreads = 2\n"))
    assert (config.p2p_threads, config.management_threads) == (4, 2)


@pytest.mark.parametrize(
    ("extra", "key", "allowed"),
    [
        ('rpcAddress = "x"', "rpcAddress", "unknown key"),
        ("notary { validating = maybe }", "notary.validating", "true or false"),
        ('p2pAddress = "127.0.0.1:99999"', "p2pAddress", "port from 1 to 65535"),
        ('managementAddress = "nohost"', "managementAddress", "host:port"),
        ('myLegalName = "O=PartyA, C=GB"', "myLegalName", "attribute L"),
        ("managementThreads = 0", "managementThreads", "whole number from 1 to 256"),
        ("p2pThreads = true", "p2pThreads", "whole number from 1 to 256"),
        ('managementThreads = "4"', "managementThreads", "whole number from 1 to 256"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(
    tmp_path: Path, extra: str, key: str, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as err:
        load_node_config(write(tmp_path, GOOD + extra + "\n"))
    assert err.value.key == key
    assert allowed in str(err.value)


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    text = GOOD.replace('networkMapFile = "../network-map.json"', "")
    with pytest.raises(ConfigurationError, match="networkMapFile: None is not allowed; required"):
        load_node_config(write(tmp_path, text))


def test_a_missing_file_and_bad_hocon_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--config"):
        load_node_config(tmp_path / "absent.conf")
    with pytest.raises(ConfigurationError, match="valid HOCON"):
        load_node_config(write(tmp_path, "myLegalName = {"))


def test_flow_hospital_rules_from_hocon(tmp_path: Path) -> None:
    # Optional keys left out (flowName, backoff's factor): pyhocon's objects raise on a missing key.
    config = load_node_config(
        write(
            tmp_path,
            GOOD
            + "flowHospital.rules = [\n"
            + "  { match = InjectedFaultError, action = observe }\n"
            + "  { match = DeadlockError, action = retry, backoff { initial = 2s } }\n"
            + "]\n",
        )
    )
    observe, retry = config.hospital.rules
    assert (observe.match, observe.action, observe.flow_name) == ("InjectedFaultError", "observe", None)
    assert (retry.action, retry.backoff.initial_s, retry.backoff.factor, retry.retries_for_ever) == (
        "retry",
        2.0,
        1.5,
        True,
    )
    with pytest.raises(ConfigurationError, match=r"flowHospital.rules\[0\].action"):
        load_node_config(
            write(tmp_path, GOOD + "flowHospital.rules = [{ match = DeadlockError, action = retyr }]\n")
        )


def test_finality_recovery_is_off_unless_asked(tmp_path: Path) -> None:
    assert load_node_config(write(tmp_path, GOOD)).finality_recovery.auto_recover is False
    text = (
        GOOD + "finalityRecovery { autoRecover = true, minimumAge = 45m, scanInterval = 5m, jitter = 0.1 }\n"
    )
    given = load_node_config(write(tmp_path, text)).finality_recovery
    assert (given.auto_recover, given.minimum_age_s, given.scan_interval_s, given.jitter) == (
        True,
        2700,
        300,
        0.1,
    )
    with pytest.raises(ConfigurationError, match=r"finalityRecovery.minimumAge.*from 1s to 30d"):
        load_node_config(write(tmp_path, GOOD + "finalityRecovery.minimumAge = 0s\n"))
    with pytest.raises(ConfigurationError, match="unknown key"):
        load_node_config(write(tmp_path, GOOD + "finalityRecovery.autoRecovery = true\n"))


def test_ledger_recovery_settings(tmp_path: Path) -> None:
    from datetime import timedelta

    plain = load_node_config(write(tmp_path, GOOD))
    assert plain.transaction_recovery_period is None
    assert not plain.ledger_recovery.hold_new_flows_until_recovered
    config = load_node_config(
        write(
            tmp_path,
            GOOD
            + "transactionRecoveryPeriod = 7d\n"
            + "ledgerRecovery { unrecoverableRetryInterval = 30m, holdNewFlowsUntilRecovered = true }\n",
        )
    )
    assert config.transaction_recovery_period == timedelta(days=7)
    assert config.ledger_recovery.unrecoverable_retry_interval_s == 1800
    assert config.ledger_recovery.hold_new_flows_until_recovered
    with pytest.raises(ConfigurationError, match=r"ledgerRecovery.unrecoverableRetryInterval.*from 1m to 7d"):
        load_node_config(write(tmp_path, GOOD + "ledgerRecovery.unrecoverableRetryInterval = 5s\n"))
    with pytest.raises(ConfigurationError, match=r"transactionRecoveryPeriod"):
        load_node_config(write(tmp_path, GOOD + "transactionRecoveryPeriod = soon\n"))


def test_a_node_conf_that_cannot_be_read_as_text_is_named(tmp_path: Path) -> None:
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfe" + GOOD.encode())
    with pytest.raises(ConfigurationError, match=r"a readable UTF-8 node\.conf") as err:
        load_node_config(binary)
    assert err.value.key == "--config"
    with pytest.raises(ConfigurationError, match="Is a directory"):
        load_node_config(tmp_path)
    with pytest.raises(ConfigurationError, match=r"absent\.conf") as missing:
        load_node_config(write(tmp_path, GOOD + 'include required("absent.conf")\n'))
    assert missing.value.key == "node.conf"  # not "--config": node.conf is there, what it includes is not


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30.0), (" 30 s ", 30.0), ("1.5h", 5400.0), ("500ms", 0.5), ("10", 10.0), ("1d", 86400.0)],
)
def test_node_conf_durations(tmp_path: Path, value: str, seconds: float) -> None:
    config = load_node_config(write(tmp_path, GOOD + f'transactionRecoveryPeriod = "{value}"\n'))
    assert config.transaction_recovery_period == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["99999999999999d", "1" * 400 + "s", "1 x", "1e3", "-1s"])
def test_node_conf_durations_out_of_range_or_form_are_named(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        load_node_config(write(tmp_path, GOOD + f'transactionRecoveryPeriod = "{value}"\n'))
    assert err.value.key == "transactionRecoveryPeriod"


def test_a_long_pathological_duration_is_answered_at_once() -> None:
    # The node.conf durations' regex (`\s*(ms|s|...)?\s*$`, two runs of \s side by side) took quadratic
    # time on a number, spaces and a stray letter: minutes on 200,000 spaces. A guard against a parser
    # that hangs, in a process of its own with a generous deadline.
    script = textwrap.dedent(
        """
        from agent.errors import ConfigurationError
        from agent.hospital.policy import parse_duration
        n = 200_000
        for text in ("1" + " " * n + "x", " " * n + "1" + " " * n + "x", "1" * n + "x"):
            try:
                parse_duration("k", text)
            except ConfigurationError:
                print("refused")
        print(parse_duration("k", " " * n + "90" + " " * n + "m" + " " * n))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split("\n") == ["refused", "refused", "refused", "5400.0", ""]
