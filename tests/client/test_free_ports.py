"""free_port_range: ports for test and demo networks, outside the range outgoing connections use."""

from __future__ import annotations

import socket

import pytest

from agent.client.launcher import AgentProcessError, _ephemeral_low, free_port_range


def test_the_ports_are_free_and_below_the_ephemeral_range() -> None:
    base = free_port_range(8)
    assert base >= 20000 and base + 8 <= _ephemeral_low()
    held = []
    try:
        for port in range(base, base + 8):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind(("127.0.0.1", port))
    finally:
        for s in held:
            s.close()


def test_a_taken_port_moves_the_range_on() -> None:
    base = free_port_range(4)
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", base + 2))
        taken.listen()
        again = free_port_range(4)
        assert not again <= base + 2 < again + 4
    finally:
        taken.close()


def test_no_room_is_named() -> None:
    with pytest.raises(AgentProcessError, match="no room for 8 consecutive ports between 20000 and 20005"):
        free_port_range(8, start=20000, end=20005)
