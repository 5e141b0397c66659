"""Durable flows: checkpoints, and (later) the flows themselves."""
