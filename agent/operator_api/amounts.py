"""What the token flows accept from an operator: an amount and a currency code.

Pure, like the rest of agent.operator_api: the catalogue's parameter kinds check a request with these
before anything runs, and the token service checks them again (agent.tokens.service), so a caller in
code is held to the same bounds as REST, JSON-RPC, Jolokia and the shell.

An amount is a whole number from 1 to 2^63 - 1: what a signed 64-bit long holds, as Corda's
Amount.quantity does (an issuance of 2^64 was accepted, and no Corda node could hold it). A currency
code is 3 to 12 characters, an upper-case letter then upper-case letters or digits: ISO 4217's three
letters (GBP) fit, and so do the short codes of one's own that tests and networks use (R01, USDC).
"""

from __future__ import annotations

import re
from typing import Any

MAX_AMOUNT = 2**63 - 1
AMOUNT_RANGE = (
    f"a whole number from 1 to {MAX_AMOUNT} (2^63 - 1, a signed 64-bit long as Corda's Amount.quantity)"
)
MAX_CURRENCY_CHARS = 12
CURRENCY_FORM = (
    f"a currency code of 3 to {MAX_CURRENCY_CHARS} characters, an upper-case letter then upper-case "
    "letters or digits, such as GBP or R01"
)
_CURRENCY = re.compile(rf"[A-Z][A-Z0-9]{{2,{MAX_CURRENCY_CHARS - 1}}}")


def is_amount(value: Any) -> bool:
    """value is a whole number (not a bool) from 1 to MAX_AMOUNT."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_AMOUNT


def is_currency(value: Any) -> bool:
    """value is a currency code of CURRENCY_FORM."""
    return isinstance(value, str) and len(value) <= MAX_CURRENCY_CHARS and bool(_CURRENCY.fullmatch(value))
