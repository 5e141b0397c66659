"""X.500 names with CordaX500Name's rules, parties, and the peer id used by recovery records."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from agent.errors import InvalidNameError

if TYPE_CHECKING:
    # An annotation only: the name parser stays free of cryptography, so the operator tools
    # (agent.client) can parse X.500 names without loading it.
    from agent.ledger.keys import PublicKey

# ISO 3166-1 alpha-2, as java.util.Locale.getISOCountries() lists them, plus "ZZ" (unspecified), which
# CordaX500Name also accepts.
ISO_COUNTRIES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW ZZ
    """.split()  # noqa: SIM905 - one code a word reads better than 250 lines
)

# Corda's limits are exclusive ("must contain less than N characters").
_MAX_LENGTH = {"CN": 64, "OU": 64, "O": 128, "L": 64, "ST": 64}
_ATTRIBUTE_MAX = 255
# The printed order of X500Principal.toString(), which the peer id hashes.
_ORDER = ("CN", "OU", "O", "L", "ST", "C")
_REQUIRED = ("O", "L", "C")
# Our string form has no escaping, so a value may not hold a character that would need it (RFC 4514's
# specials), nor NUL, which Corda bans outright.
_FORBIDDEN = frozenset(',=+<>#;"\\\x00')
_WHITESPACE = re.compile(r"\s+")


def _normalise(value: str) -> str:
    return unicodedata.normalize("NFKC", _WHITESPACE.sub(" ", value.strip()))


def _check_attribute(text: str, attribute: str, value: str) -> None:
    if value != _normalise(value):
        raise InvalidNameError(
            text, attribute, "must be normalised: no leading, trailing or repeated white space, NFKC form"
        )
    if len(value) > _ATTRIBUTE_MAX:
        raise InvalidNameError(text, attribute, f"longer than {_ATTRIBUTE_MAX} characters")
    if sum(1 for ch in value if ch.isalpha()) < 2:
        raise InvalidNameError(text, attribute, "must have at least two letters")
    bad = sorted({ch for ch in value if ch in _FORBIDDEN})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise InvalidNameError(text, attribute, f"character(s) not allowed: {shown}")
    limit = _MAX_LENGTH.get(attribute)
    if limit is not None and len(value) >= limit:
        raise InvalidNameError(text, attribute, f"must be shorter than {limit} characters")


@dataclass(frozen=True, order=True)
class X500Name:
    """A CordaX500Name: O, L and C required; CN, OU and ST optional."""

    organisation: str
    locality: str
    country: str
    common_name: str | None = None
    organisation_unit: str | None = None
    state: str | None = None

    def __post_init__(self) -> None:
        text = self._format()
        for attribute, value in self._attributes():
            _check_attribute(text, attribute, value)
        if self.country not in ISO_COUNTRIES:
            raise InvalidNameError(text, "C", f"{self.country!r} is not an ISO 3166-1 alpha-2 country code")
        # Printed for every state, record and message that names the party: formatted once. Not a
        # field, so equality, ordering and hashing are unchanged.
        object.__setattr__(self, "_text", text)

    def _attributes(self) -> list[tuple[str, str]]:
        values = {
            "CN": self.common_name,
            "OU": self.organisation_unit,
            "O": self.organisation,
            "L": self.locality,
            "ST": self.state,
            "C": self.country,
        }
        return [(key, value) for key in _ORDER if (value := values[key]) is not None]

    def _format(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self._attributes())

    @classmethod
    def parse(cls, text: str) -> X500Name:
        """Parse "O=PartyA, L=London, C=GB"; spaces around separators and attribute case do not matter."""
        if cls is X500Name and isinstance(text, str):
            # A network names a few parties in every record and message: each text is parsed once.
            return _parse_cached(text)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> X500Name:
        if not isinstance(text, str) or not text.strip():
            raise InvalidNameError(str(text), None, "empty")
        found: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip().upper()
            if not sep or not key:
                raise InvalidNameError(text, None, f"{part.strip()!r} is not of the form KEY=value")
            if key == "S":
                key = "ST"
            if key not in _ORDER:
                raise InvalidNameError(text, key, "not supported (allowed: CN, OU, O, L, ST, C)")
            if key in found:
                raise InvalidNameError(text, key, "duplicated")
            found[key] = value.strip()
        return cls.from_attributes(found, text)

    @classmethod
    def from_attributes(cls, found: Mapping[str, str], text: str) -> X500Name:
        """Build from attribute keys (CN, OU, O, L, ST, C) to values; text is what error messages show."""
        for key in _REQUIRED:
            if key not in found:
                raise InvalidNameError(text, key, "required but missing")
        return cls(
            organisation=found["O"],
            locality=found["L"],
            country=found["C"],
            common_name=found.get("CN"),
            organisation_unit=found.get("OU"),
            state=found.get("ST"),
        )

    def __str__(self) -> str:
        text: str = self.__dict__["_text"]
        return text

    @cached_property
    def peer_id(self) -> str:
        """Hex SHA-256 of the printed name: the peer id of Corda's recovery tables."""
        return hashlib.sha256(str(self).encode("utf-8")).hexdigest()


def peer_id(name: X500Name | str) -> str:
    """The peer id of a name given as text or as an X500Name."""
    parsed = name if isinstance(name, X500Name) else X500Name.parse(name)
    return parsed.peer_id


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> X500Name:
    # An invalid text raises, and lru_cache keeps no exception: each one is parsed, and refused, again.
    return X500Name._parse(text)


@dataclass(frozen=True)
class Party:
    """A well-known identity: a name and the key it signs with."""

    name: X500Name
    owning_key: PublicKey

    def __str__(self) -> str:
        return str(self.name)
