"""The node folder as `network init` writes it and the operator tools read it."""

from __future__ import annotations

NODE_CONFIG_FILE = "node.conf"
PASSWORD_FILE = "management-password"  # the operator's password, readable by its owner only
OPERATOR_USER = "operator"
MONITOR_PASSWORD_FILE = "monitor-password"  # the read-only user's, for Prometheus and check plugins
MONITOR_USER = "monitor"
