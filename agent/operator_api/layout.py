"""The node folder as `network init` writes it and the operator tools read it."""

from __future__ import annotations

from typing import TypedDict

NODE_CONFIG_FILE = "node.conf"
PASSWORD_FILE = "management-password"  # the operator's password, readable by its owner only
OPERATOR_USER = "operator"
MONITOR_PASSWORD_FILE = "monitor-password"  # the read-only user's, for Prometheus and check plugins
MONITOR_USER = "monitor"


class CreatedNode(TypedDict):
    """One node `network init` made, as plain data (paths absolute)."""

    name: str  # the X.500 name, printed
    role: str  # "notary" or "node"
    folder: str
    config: str  # its node.conf
    p2p_address: str  # host:port
    management_address: str  # host:port


class CreatedNetwork(TypedDict):
    """What `network init` made: the folder, and its nodes with the notary first."""

    directory: str
    nodes: list[CreatedNode]
