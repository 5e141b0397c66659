"""One network layout (certificates, keys, signed map) per test session; each seed gets fresh databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.simulation.network import Template
from tests.simulation.run import quiet_logs


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    with quiet_logs():
        yield


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return Template.create(tmp_path_factory.mktemp("sim") / "template")


@pytest.fixture(scope="session")
def pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """The same network on PostgreSQL: a template database per node, dropped at the end."""
    template = Template.create(tmp_path_factory.mktemp("sim-pg") / "template", "postgresql")
    yield template
    template.drop()
