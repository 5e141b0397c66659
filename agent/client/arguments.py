"""The Corda shell's argument syntax, `name: value, name: value`, shared by `flow start` and the shell."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.errors import ConfigurationError


def parse_flow_arguments(words: Sequence[str]) -> dict[str, Any]:
    """The Corda shell's `name: value, name: value` (YAML flow mapping) as a dict."""
    import yaml

    text = " ".join(words).strip()
    if not text:
        return {}
    try:
        parsed = yaml.safe_load("{" + text + "}")
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(
            "flow arguments",
            text,
            f'allowed: name: value, ... as in party: "O=PartyB, L=London, C=GB" ({problem})',
        ) from exc
    if not isinstance(parsed, dict) or not all(isinstance(k, str) for k in parsed):
        raise ConfigurationError("flow arguments", text, "allowed: name: value, ...")
    return parsed
