"""The login throttle in simulated time: when an address is backed off, for how long, what is logged;
and node.conf's managementLogins keys."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.clock import ManualClock
from agent.config import load_node_config
from agent.errors import ConfigurationError, TooManyLoginAttemptsError
from agent.login_throttle import (
    LoginThrottle,
    LoginThrottleSettings,
    parse_login_throttle_settings,
)
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network

LOGGER = "ledger_agent.management.logins"
SETTINGS = LoginThrottleSettings(max_failures=3, failure_window_s=60, back_off_s=300)


def throttle(settings: LoginThrottleSettings = SETTINGS) -> tuple[LoginThrottle, ManualClock]:
    clock = ManualClock()
    return LoginThrottle(settings, clock), clock


def test_an_address_is_backed_off_after_max_failures_within_the_window() -> None:
    logins, clock = throttle()
    for _ in range(2):
        logins.admit("10.0.0.1")
        assert logins.failed("10.0.0.1", "operator") is False
    logins.admit("10.0.0.1")
    assert logins.failed("10.0.0.1", "operator") is True
    with pytest.raises(TooManyLoginAttemptsError) as refused:
        logins.admit("10.0.0.1")
    assert refused.value.retry_after_s == 300
    assert refused.value.address == "10.0.0.1"
    logins.admit("10.0.0.2")  # another address is not affected
    clock.advance(timedelta(seconds=299.5))
    with pytest.raises(TooManyLoginAttemptsError) as refused:
        logins.admit("10.0.0.1")
    assert refused.value.retry_after_s == 1  # rounded up: never "retry in 0 s"
    clock.advance(timedelta(seconds=0.5))
    logins.admit("10.0.0.1")  # the back-off has ended
    assert not logins.backed_off("10.0.0.1")
    # and the failures before it are forgotten: it takes max_failures again
    assert logins.failed("10.0.0.1", "operator") is False
    assert logins.failed("10.0.0.1", "operator") is False
    assert logins.failed("10.0.0.1", "operator") is True


def test_failures_older_than_the_window_do_not_count() -> None:
    logins, clock = throttle()
    assert logins.failed("10.0.0.1", "monitor") is False
    assert logins.failed("10.0.0.1", "monitor") is False
    clock.advance(timedelta(seconds=60))  # both age out
    assert logins.failed("10.0.0.1", "monitor") is False
    clock.advance(timedelta(seconds=30))
    assert logins.failed("10.0.0.1", "monitor") is False
    logins.admit("10.0.0.1")
    assert logins.failed("10.0.0.1", "monitor") is True  # three within 60 s: at 60 s, 90 s and 90 s


# Whole microseconds: the clock's (and timedelta's) resolution; a back-off of 1.0000000000000002 s is
# 1 s to it, and node.conf's durations are whole units anyway.
MICROS = 1_000_000


@given(
    max_failures=st.integers(1, 20),
    back_off_s=st.integers(1 * MICROS, 86400 * MICROS).map(lambda us: us / MICROS),
    waited_s=st.integers(0, 86400 * MICROS).map(lambda us: us / MICROS),
)
def test_retry_after_is_never_below_one_nor_beyond_the_back_off(
    max_failures: int, back_off_s: float, waited_s: float
) -> None:
    settings = LoginThrottleSettings(max_failures=max_failures, failure_window_s=60, back_off_s=back_off_s)
    logins, clock = throttle(settings)
    started = [logins.failed("a", "u") for _ in range(max_failures)]
    assert started == [False] * (max_failures - 1) + [True]
    clock.advance(timedelta(seconds=waited_s))
    if waited_s >= back_off_s:
        logins.admit("a")
        return
    with pytest.raises(TooManyLoginAttemptsError) as refused:
        logins.admit("a")
    assert 1 <= refused.value.retry_after_s <= max(1, int(back_off_s) + 1)
    assert refused.value.retry_after_s >= back_off_s - waited_s


def test_a_flood_is_summarised_in_the_log_not_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    logins, clock = throttle()
    caplog.set_level(logging.WARNING, logger=LOGGER)
    logins.failed("10.0.0.9", "operator")
    logins.failed("10.0.0.9", "admin")
    logins.failed("10.0.0.9", "root")
    for _ in range(1000):
        with pytest.raises(TooManyLoginAttemptsError):
            logins.admit("10.0.0.9")
    clock.advance(timedelta(seconds=300))
    logins.admit("10.0.0.9")  # after the back-off: the refusals are summed up in one line
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == LOGGER)
    assert lines == [
        "failed management login from 10.0.0.9: user 'operator' (bad credentials)",
        "management logins from 10.0.0.9 backed off for 300 s after 3 failed within 60 s "
        "(users tried: 'operator', 'admin', 'root')",
        "management logins from 10.0.0.9: 1000 request(s) refused during its back-off, "
        "which ended at 2026-01-01T00:05:00+00:00",
    ]


def test_failures_below_the_limit_are_counted_into_a_later_line(caplog: pytest.LogCaptureFixture) -> None:
    logins, clock = throttle(LoginThrottleSettings(max_failures=10, failure_window_s=60, back_off_s=60))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    logins.failed("10.0.0.3", "alice")
    logins.failed("10.0.0.3", "bob")
    logins.failed("10.0.0.3", "bob")
    clock.advance(timedelta(seconds=61))
    logins.admit("10.0.0.4")  # any request, from anywhere: the quiet address's count is logged
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert lines == [
        "failed management login from 10.0.0.3: user 'alice' (bad credentials)",
        "failed management logins from 10.0.0.3: 2 since the last line (users tried: 'bob')",
    ]


def test_a_long_user_name_is_cut_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    logins, _ = throttle()
    caplog.set_level(logging.WARNING, logger=LOGGER)
    logins.failed("10.0.0.5", "x" * 5000 + "\n")
    (line,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "x" * 64 + "..." in line and "x" * 65 not in line and "\n" not in line


def test_settings_defaults_and_ranges() -> None:
    assert parse_login_throttle_settings({}) == LoginThrottleSettings(
        max_failures=5, failure_window_s=60, back_off_s=300
    )
    parsed = parse_login_throttle_settings(
        {
            "managementLogins.maxFailures": 10,
            "managementLogins.failureWindow": "2m",
            "managementLogins.backOff": 30,
        }
    )
    assert parsed == LoginThrottleSettings(max_failures=10, failure_window_s=120, back_off_s=30)
    for key, value, allowed in (
        ("managementLogins.maxFailures", 0, "from 1 to 1000"),
        ("managementLogins.maxFailures", 1001, "from 1 to 1000"),
        ("managementLogins.maxFailures", True, "from 1 to 1000"),
        ("managementLogins.failureWindow", "2d", "from 1s to 1d"),
        ("managementLogins.backOff", 0, "above 0"),
        ("managementLogins.backOff", "0.5s", "from 1s to 1d"),
    ):
        with pytest.raises(ConfigurationError) as bad:
            parse_login_throttle_settings({key: value})
        assert bad.value.key == key and allowed in str(bad.value)


def test_node_conf_reads_the_management_logins_block(tmp_path: Path) -> None:
    layout = init_network(tmp_path / "net", default_node_names(1), DEFAULT_NOTARY)
    conf = layout.nodes[0].config
    with conf.open("a") as f:
        f.write("\nmanagementLogins { maxFailures = 7, failureWindow = 30s, backOff = 10m }\n")
    assert load_node_config(conf).management_logins == LoginThrottleSettings(
        max_failures=7, failure_window_s=30, back_off_s=600
    )
    with conf.open("a") as f:
        f.write("\nmanagementLogins.lockout = 1m\n")
    with pytest.raises(ConfigurationError) as unknown:
        load_node_config(conf)
    assert unknown.value.key == "managementLogins.lockout"
