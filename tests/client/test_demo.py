"""The main job, `ledger-agent demo`, run once for the whole module: real agent processes on SQLite.

The workload must agree everywhere; then PartyA is restored from its mid-workload backup and its
reconciliations must name exactly what it lost. The stores are read again here after the demo has
stopped every process, so the checks do not rest on the demo's own bookkeeping alone.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import peewee
import pytest

from agent.client.demo import DemoResult, Disaster, run_demo
from agent.client.progress import Progress
from agent.store.ledger_store import LedgerStore

A, B, C = "O=PartyA, L=London, C=GB", "O=PartyB, L=New York, C=US", "O=PartyC, L=Paris, C=FR"


@dataclass
class Run:
    folder: Path
    result: DemoResult
    out: str
    progress: Progress  # its stream a StringIO, as with --progress in a pipe

    @property
    def disaster(self) -> Disaster:
        assert self.result.disaster is not None
        return self.result.disaster


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("demo") / "net"
    lines: list[str] = []
    progress = Progress("demo", None, enabled=True, stream=io.StringIO(), every_s=0.0)
    result = run_demo(folder, moves=25, out=lines.append, progress=progress)
    progress.finish()
    return Run(folder, result, "\n".join(lines), progress)


def store_ids(db: Path) -> set[str]:
    store = LedgerStore(peewee.SqliteDatabase(db.as_uri() + "?mode=ro", uri=True))
    try:
        return {str(i) for i in store.transactions.iter_transaction_ids()}
    finally:
        store.close()


def status_block(out: str, party: str) -> str:
    """The ReconciliationStatus printed after `flow start GetReconciliationStatusForPartyFlow party`."""
    command = f'flow start GetReconciliationStatusForPartyFlow party: "{party}", isRequester: true\n'
    block = out.split(command, 1)[1]
    return block[: block.index("\n)") + 2]


def test_the_nodes_agree_before_the_disaster(run: Run) -> None:
    assert "OK: 3 nodes agree" in run.out
    assert run.out.count("0 in flight") == 3
    for party in (A, B, C):
        assert party in run.out
    assert (run.folder / "backup" / "PartyA.db").stat().st_size > 0


def test_the_reconciliations_find_exactly_what_was_lost(run: Run) -> None:
    d = run.disaster
    assert run.result.ok, run.result.problems
    assert d.node == A
    recoverable = d.lost - d.unheld
    assert len(recoverable) > 0
    assert (
        f"OK: PartyA's reconciliations found exactly the {len(recoverable)} transactions it lost" in run.out
    )
    assert "DISAGREEMENT" not in run.out
    assert set(d.found) == {B, C}
    for peer in (B, C):
        assert d.statuses[peer] == "DIFFERENCES_FOUND"
        assert d.found[peer] == d.expected[peer]
        block = status_block(run.out, peer)
        assert block.startswith(f'Flow completed with result: ReconciliationStatus(\n    partyName="{peer}",')
        assert "lastReconciliationStatus=DIFFERENCES_FOUND" in block
        assert set(re.findall(r"^        ([0-9A-F]{64}),?$", block, re.MULTILINE)) == d.found[peer]
    assert set().union(*d.found.values()) == recoverable
    # PartyA's exit, made after the backup, was PartyA's alone: no peer can give it back.
    assert len(d.unheld) == 1


def test_partya_is_recovered_but_for_its_exit_and_pays_again(run: Run) -> None:
    d = run.disaster
    recoverable = d.lost - d.unheld
    assert d.recovered == len(recoverable)
    assert "ledger-agent recover --peer" in run.out and "nothing changed (a dry run)" in run.out
    assert f"PartyA is recovered: {len(recoverable)} transactions came back" in run.out
    assert f"which no peer holds and nothing can recover: {next(iter(d.unheld))}" in run.out
    assert re.search(r"PartyA pays PartyC 1 \w+ again: [0-9A-F]{16}\.\.\. VERIFIED", run.out)


def test_the_stores_after_the_demo_bear_it_out(run: Run) -> None:
    d = run.disaster
    a_now = store_ids(run.folder / "PartyA" / "node.db")
    backed_up = store_ids(run.folder / "backup" / "PartyA.db")
    assert backed_up < a_now  # restored, then recovered
    assert a_now & d.lost == d.lost - d.unheld  # everything a peer held came back, the exit did not
    assert len(a_now - backed_up - d.lost) == 1  # and the payment it made afterwards
    for peer, folder in ((B, "PartyB"), (C, "PartyC")):
        held = store_ids(run.folder / folder / "node.db")
        assert d.found[peer] <= held
        assert not held & d.unheld


def test_the_agents_spoke_mutual_tls_to_each_other_and_https_to_the_operator(run: Run) -> None:
    # The demo's network is as `network init` makes it: p2pTls and managementSsl on by default.
    logs = sorted(run.folder.glob("*/agent.log"))
    assert len(logs) == 4, logs  # the notary and three nodes
    for log in logs:
        serving = [line for line in log.read_text().splitlines() if " serving peers on " in line]
        assert serving, log
        for line in serving:
            assert re.search(r"serving peers on https://\S+ .* and management on https://", line), line


def test_every_agent_process_is_stopped(run: Run) -> None:
    assert run.out.rstrip().endswith("stopped every agent process")
    pids = {int(p) for p in re.findall(r"\bpid (\d+)", run.out)}
    assert len(pids) == 5  # the notary, three nodes, and PartyA again after the restore
    for proc in run.result.processes:
        assert proc.process is not None and proc.process.poll() is not None
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_progress_counts_every_step_to_the_total(run: Run) -> None:
    stream = run.progress.stream
    assert isinstance(stream, io.StringIO)
    lines = stream.getvalue().splitlines()
    total = 4 + 3 + 25 + 5  # agents started, issues, payments, backup, exit, check, disaster, recovery
    assert lines[0] == "demo: 0 creating the network"
    assert lines[1] == f"demo: 0/{total} starting the agents"
    assert f"demo: 4/{total} starting the agents" in lines and f"demo: 7/{total} paying" in lines
    done = [int(line.split()[1].split("/")[0]) for line in lines[1:]]
    assert done == sorted(done) and lines[-1] == f"demo: {total}/{total} done"
