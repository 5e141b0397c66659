"""The agent's own log: node.conf's logging block, refusals rate-limited, files rotated (docs/logging.md)."""
