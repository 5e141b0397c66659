"""Checkpoints: saved as an upsert, updated in place, read back and filtered."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agent.errors import StoreError
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.ledger.hashing import SecureHash
from agent.ports.checkpoints import CheckpointCounts, Checkpoints
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor
from tests.ports.conftest import NOW


@pytest.fixture
def checkpoints(store: LedgerStore) -> Checkpoints:
    return store.checkpoints


@pytest.fixture
def counts(store: LedgerStore) -> CheckpointCounts:
    return store.checkpoint_counts


def checkpoint(n: int, **changes: object) -> FlowCheckpoint:
    cp = FlowCheckpoint(
        flow_id=f"00000000-0000-0000-0000-{n:012d}",
        flow_name="FinalityFlow",
        status=FlowStatus.RUNNABLE,
        started_at=NOW + timedelta(seconds=n),
        updated_at=NOW + timedelta(seconds=n),
        progress_step="VERIFIED",
        tx_id=SecureHash.of(bytes([n])),
        value=b"\x00state" + bytes([n]),
    )
    return replace(cp, **changes)  # type: ignore[arg-type]


def test_save_is_an_upsert_that_keeps_started_at(checkpoints: Checkpoints, bob: Actor) -> None:
    cp = checkpoint(1, counterparties=(bob.name,))
    checkpoints.save_checkpoint(cp)
    failed = replace(cp, status=FlowStatus.FAILED, error="boom", started_at=NOW + timedelta(days=1))
    checkpoints.save_checkpoint(failed)
    assert checkpoints.get_checkpoint(cp.flow_id) == replace(failed, started_at=cp.started_at)
    assert checkpoints.get_checkpoint("nope") is None


def test_update_writes_progress_and_the_bytes_only_when_changed(checkpoints: Checkpoints) -> None:
    cp = checkpoint(1)
    checkpoints.save_checkpoint(cp)
    stepped = replace(cp, progress_step="AFTER_RECORD", updated_at=NOW + timedelta(minutes=1), value=b"new")
    checkpoints.update_checkpoint(stepped, value_changed=False)
    assert checkpoints.get_checkpoint(cp.flow_id) == replace(stepped, value=cp.value)
    checkpoints.update_checkpoint(stepped)
    assert checkpoints.get_checkpoint(cp.flow_id) == stepped
    with pytest.raises(StoreError, match="no checkpoint row"):
        checkpoints.update_checkpoint(checkpoint(2))


def test_filters_combine_and_order_is_by_start(checkpoints: Checkpoints, counts: CheckpointCounts) -> None:
    saved = [
        checkpoint(3),
        checkpoint(1, status=FlowStatus.HOSPITALIZED),
        checkpoint(2, flow_name="ReceiveFinalityFlow"),
        checkpoint(4, status=FlowStatus.COMPLETED, tx_id=SecureHash.of(bytes([1]))),
    ]
    for cp in saved:
        checkpoints.save_checkpoint(cp)
    assert [c.flow_id for c in checkpoints.iter_checkpoints()] == [
        checkpoint(n).flow_id for n in (1, 2, 3, 4)
    ]
    assert list(checkpoints.iter_checkpoints(FlowStatus.RUNNABLE)) == [saved[2], saved[0]]
    assert list(checkpoints.iter_checkpoints(tx_id=SecureHash.of(bytes([1])))) == [saved[1], saved[3]]
    assert list(checkpoints.iter_checkpoints(FlowStatus.RUNNABLE, flow_name="ReceiveFinalityFlow")) == [
        saved[2]
    ]
    assert counts.count_checkpoints() == {
        **dict.fromkeys(FlowStatus, 0),
        FlowStatus.RUNNABLE: 2,
        FlowStatus.HOSPITALIZED: 1,
        FlowStatus.COMPLETED: 1,
    }
