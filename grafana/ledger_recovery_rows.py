"""The "Ledger Recovery" row of the node view: missing transactions pending, recovered and unrecoverable
per peer, the recovery rate, the estimated time to completion, and the time since the last progress
(docs/ledger-recovery.md, "Monitoring").

The rate is PromQL's rate() over the recovered counter; the estimate is the agent's (pending over the
last minute's rate). The per-peer series have no sample until a recovery has found something missing:
the totals fall back to 0 (`or on() vector(0)`); the estimate shows "No data" while nothing moves.
"""

from __future__ import annotations

from grafana.hospital_rows import Selector
from grafana.panels import NEUTRAL, Row, ages, problems, series, stat
from mbeans import metrics as m

TITLE = "Ledger Recovery"


def node_row(on: Selector) -> Row:
    pending = on(m.LEDGER_RECOVERY_MISSING, 'status="PENDING"')
    unrecoverable = on(m.LEDGER_RECOVERY_MISSING, 'status="UNRECOVERABLE"')
    recovered = on(m.LEDGER_RECOVERY_RECOVERED)
    remaining = on(m.LEDGER_RECOVERY_ESTIMATED_REMAINING)
    last = on(m.LEDGER_RECOVERY_LAST_PROGRESS)
    return Row(
        TITLE,
        [
            (
                stat(
                    "Pending",
                    problems("orange"),
                    f"sum({pending}) or on() vector(0)",
                    description="Missing transactions (one per peer and record) still to recover",
                ),
                4,
                4,
            ),
            (
                stat(
                    "Recovered",
                    NEUTRAL,
                    f"sum({recovered}) or on() vector(0)",
                    description=m.LEDGER_RECOVERY_RECOVERED.help,
                ),
                4,
                4,
            ),
            (
                stat(
                    "Unrecoverable",
                    problems(),
                    f"sum({unrecoverable}) or on() vector(0)",
                    description="No peer supplied them; `ledger-agent recover` lists each failure cause",
                ),
                4,
                4,
            ),
            (
                stat(
                    "Recovery flows running",
                    NEUTRAL,
                    on(m.LEDGER_RECOVERY_RUNNING),
                    description=m.LEDGER_RECOVERY_RUNNING.help,
                ),
                4,
                4,
            ),
            (
                stat(
                    "Time to completion",
                    NEUTRAL,
                    f"max({remaining})",
                    unit="s",
                    description=m.LEDGER_RECOVERY_ESTIMATED_REMAINING.help,
                ),
                4,
                4,
            ),
            (
                stat(
                    "Since the last progress",
                    ages(120, 600),
                    f"time() - max({last})",
                    unit="s",
                    description="LedgerRecoveryStalled fires after 10 minutes with transactions pending",
                ),
                4,
                4,
            ),
            (
                series(
                    "Missing transactions, by peer",
                    (pending, "{{peer}} pending"),
                    (unrecoverable, "{{peer}} unrecoverable"),
                    (recovered, "{{peer}} recovered"),
                    description=m.LEDGER_RECOVERY_MISSING.help,
                ),
                12,
                8,
            ),
            (
                series(
                    "Recovered per second, by peer",
                    (f"sum by (peer) (rate({recovered}[$__rate_interval]))", "{{peer}}"),
                    description="rate() of " + m.LEDGER_RECOVERY_RECOVERED.name,
                ),
                12,
                8,
            ),
            (
                series(
                    "Estimated time to completion, by peer",
                    (remaining, "{{peer}}"),
                    unit="s",
                    description=m.LEDGER_RECOVERY_ESTIMATED_REMAINING.help,
                ),
                12,
                8,
            ),
            (
                series(
                    "Since the last progress, peers with transactions pending",
                    (f"time() - {last} and on(instance, peer) ({pending} > 0)", "{{peer}}"),
                    unit="s",
                    description=m.LEDGER_RECOVERY_LAST_PROGRESS.help,
                ),
                12,
                8,
            ),
        ],
    )
