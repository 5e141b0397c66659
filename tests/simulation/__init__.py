"""The seeded network simulation (docs/simulation.md): `python -m tests.simulation --seeds 5000`."""
