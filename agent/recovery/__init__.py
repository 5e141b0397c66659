"""Ledger recovery: the metadata finality leaves behind, and (later) the flows that use it."""
