"""Token operations an operator starts (issue, pay, exit), each ending in two-phase finality."""
