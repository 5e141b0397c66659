from __future__ import annotations

import hashlib
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import AgentError, InvalidNameError
from agent.ledger.identity import ISO_COUNTRIES, X500Name, peer_id

PARTY_A = "O=PartyA, L=London, C=GB"
LIMITS = {"CN": 64, "OU": 64, "O": 128, "L": 64, "ST": 64}
FIELDS = {
    "CN": "common_name",
    "OU": "organisation_unit",
    "O": "organisation",
    "L": "locality",
    "ST": "state",
    "C": "country",
}


def _with(attribute: str, value: str) -> str:
    """PARTY_A with one attribute set (or replaced) to value."""
    parts = {"O": "PartyA", "L": "London", "C": "GB", attribute: value}
    return ", ".join(f"{key}={val}" for key, val in parts.items())


def _refused(text: str) -> InvalidNameError:
    with pytest.raises(InvalidNameError) as caught:
        X500Name.parse(text)
    return caught.value


# -- the rules -------------------------------------------------------------------------------------


def test_required_attributes_only() -> None:
    name = X500Name.parse(PARTY_A)
    assert (name.organisation, name.locality, name.country) == ("PartyA", "London", "GB")
    assert (name.common_name, name.organisation_unit, name.state) == (None, None, None)


def test_every_optional_attribute() -> None:
    name = X500Name.parse("ST=Kent, C=GB, CN=Alice, L=London, OU=Payments, O=PartyA")
    assert name == X500Name("PartyA", "London", "GB", "Alice", "Payments", "Kent")


@pytest.mark.parametrize("missing", ["O", "L", "C"])
def test_each_required_attribute_is_required(missing: str) -> None:
    parts = {"O": "PartyA", "L": "London", "C": "GB", "CN": "Alice"}
    del parts[missing]
    error = _refused(", ".join(f"{key}={val}" for key, val in parts.items()))
    assert error.attribute == missing
    assert "missing" in error.reason


def test_spacing_around_separators_gives_the_same_name() -> None:
    spaced = X500Name.parse("O=PartyA, L=London, C=GB")
    tight = X500Name.parse("O=PartyA,L=London,C=GB")
    loose = X500Name.parse("  O = PartyA ,L= London,   C =GB ")
    assert spaced == tight == loose
    assert hash(spaced) == hash(tight)
    assert str(spaced) == str(tight) == str(loose) == PARTY_A
    assert spaced.peer_id == tight.peer_id == loose.peer_id


def test_attribute_keys_are_case_insensitive() -> None:
    assert X500Name.parse("o=PartyA, l=London, c=GB, cn=Alice, Ou=Ops, st=Kent") == X500Name.parse(
        "O=PartyA, L=London, C=GB, CN=Alice, OU=Ops, ST=Kent"
    )


def test_values_keep_their_case() -> None:
    assert X500Name.parse("O=partya, L=london, C=GB") != X500Name.parse(PARTY_A)


def test_s_is_read_as_st() -> None:
    assert X500Name.parse("O=PartyA, L=London, S=Kent, C=GB").state == "Kent"


def test_str_orders_cn_ou_o_l_st_c() -> None:
    name = X500Name.parse("C=GB, ST=Kent, L=London, O=PartyA, OU=Payments, CN=Alice")
    assert str(name) == "CN=Alice, OU=Payments, O=PartyA, L=London, ST=Kent, C=GB"


def test_peer_id_is_hex_sha256_of_the_printed_name() -> None:
    expected = hashlib.sha256(b"O=PartyA, L=London, C=GB").hexdigest()
    assert X500Name.parse(PARTY_A).peer_id == expected
    assert X500Name.parse("o=PartyA,l=London,c=GB").peer_id == expected
    assert peer_id(PARTY_A) == expected
    assert peer_id(X500Name.parse(PARTY_A)) == expected


def test_different_names_have_different_peer_ids() -> None:
    assert peer_id(PARTY_A) != peer_id("O=PartyB, L=London, C=GB")


# -- lengths (exclusive limits, as Corda) ----------------------------------------------------------


@pytest.mark.parametrize("attribute", sorted(LIMITS))
def test_length_just_under_the_limit_is_accepted(attribute: str) -> None:
    value = "a" * (LIMITS[attribute] - 1)
    name = X500Name.parse(_with(attribute, value))
    assert getattr(name, FIELDS[attribute]) == value


@pytest.mark.parametrize("attribute", sorted(LIMITS))
def test_length_at_the_limit_is_refused(attribute: str) -> None:
    error = _refused(_with(attribute, "a" * LIMITS[attribute]))
    assert error.attribute == attribute
    assert str(LIMITS[attribute]) in error.reason


# -- country ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["GB", "ZZ", "US", "CH"])
def test_iso_countries_are_accepted(country: str) -> None:
    assert X500Name.parse(_with("C", country)).country == country


@pytest.mark.parametrize("country", ["XX", "gb", "GBR", "UK", "QQ"])
def test_other_countries_are_refused(country: str) -> None:
    assert _refused(_with("C", country)).attribute == "C"


def test_the_constructor_checks_too() -> None:
    with pytest.raises(InvalidNameError) as caught:
        X500Name(organisation="PartyA", locality="London", country="XX")
    assert caught.value.attribute == "C"


# -- bad names name the attribute at fault ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "attribute"),
    [
        ("O=PartyA, C=GB", "L"),
        ("L=London, C=GB", "O"),
        ("O=PartyA, L=London", "C"),
        ("O=PartyA, L=London, C=XX", "C"),
        ("CN=" + "a" * 64 + ", O=PartyA, L=London, C=GB", "CN"),
        ("O=PartyA, L=London, C=GB, X=Other", "X"),
        ("O=PartyA, L=London, C=GB, DC=Example", "DC"),
        ("O=PartyA, O=PartyB, L=London, C=GB", "O"),
        ("O=PartyA, L=London, l=Leeds, C=GB", "L"),
        ("O=Party  A, L=London, C=GB", "O"),
        ("O=Party\tA, L=London, C=GB", "O"),
        ("O=PartyA, L=Lon\u00a0don, C=GB", "L"),
        ("O=\ufb01ne, L=London, C=GB", "O"),
        ("O=A1, L=London, C=GB", "O"),
        ("O=PartyA, L=L9, C=GB", "L"),
        ("O=PartyA, L=London, C=GB, CN=A", "CN"),
        ("O=PartyA, L=London, C=GB, OU=", "OU"),
        ("O=PartyA, L=London, C=GB, ST=1234", "ST"),
        ('O=Party"A, L=London, C=GB', "O"),
        ("O=Party+A, L=London, C=GB", "O"),
        ("O=Party=A, L=London, C=GB", "O"),
        ("O=PartyA, L=Lon;don, C=GB", "L"),
        ("O=PartyA, L=London, CN=<Alice>, C=GB", "CN"),
    ],
)
def test_bad_name_names_the_attribute(text: str, attribute: str) -> None:
    assert _refused(text).attribute == attribute


@pytest.mark.parametrize("char", list(',=+<>#;"\\\x00'))
def test_forbidden_characters_are_refused_in_any_value(char: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        X500Name(organisation="PartyA", locality=f"Lon{char}don", country="GB")
    assert caught.value.attribute == "L"
    assert repr(char) in caught.value.reason


@pytest.mark.parametrize(
    "text", ["", "   ", "O=PartyA, L=London, C=GB,", "O PartyA, L=London, C=GB", "=PartyA, L=London, C=GB"]
)
def test_malformed_text_is_refused_without_an_attribute(text: str) -> None:
    assert _refused(text).attribute is None


def test_invalid_name_error_is_a_value_error_and_an_agent_error() -> None:
    error = _refused("O=PartyA, L=London, C=XX")
    assert isinstance(error, ValueError)
    assert isinstance(error, AgentError)
    assert error.name == "O=PartyA, L=London, C=XX"


# -- properties ------------------------------------------------------------------------------------

# Letters (a few non-ASCII ones, all stable under NFKC), digits and single spaces.
_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éÅøßÇ", min_size=1)


def _values(limit: int) -> st.SearchStrategy[str]:
    return (
        st.lists(_WORD, min_size=1, max_size=5)
        .map(" ".join)
        .map(lambda value: value[: limit - 1].strip())
        .filter(lambda value: sum(ch.isalpha() for ch in value) >= 2)
    )


@st.composite
def valid_names(draw: st.DrawFn) -> X500Name:
    return X500Name(
        organisation=draw(_values(LIMITS["O"])),
        locality=draw(_values(LIMITS["L"])),
        country=draw(st.sampled_from(sorted(ISO_COUNTRIES))),
        common_name=draw(st.none() | _values(LIMITS["CN"])),
        organisation_unit=draw(st.none() | _values(LIMITS["OU"])),
        state=draw(st.none() | _values(LIMITS["ST"])),
    )


_SPACE = st.text(alphabet=" \t\r\n", max_size=3)


@settings(max_examples=100, deadline=None)
@given(valid_names())
def test_parse_of_str_is_the_identity(name: X500Name) -> None:
    assert unicodedata.normalize("NFKC", str(name)) == str(name)
    parsed = X500Name.parse(str(name))
    assert parsed == name
    assert str(parsed) == str(name)
    assert parsed.peer_id == hashlib.sha256(str(name).encode("utf-8")).hexdigest()


@settings(max_examples=100, deadline=None)
@given(valid_names(), st.data())
def test_spacing_case_and_order_do_not_change_the_name(name: X500Name, data: st.DataObject) -> None:
    pairs = [part.split("=", 1) for part in str(name).split(", ")]
    pairs = data.draw(st.permutations(pairs))
    written = []
    for key, value in pairs:
        spelt = key.lower() if data.draw(st.booleans()) else key
        written.append(data.draw(_SPACE) + spelt + data.draw(_SPACE) + "=" + data.draw(_SPACE) + value)
    text = ",".join(part + data.draw(_SPACE) for part in written)
    parsed = X500Name.parse(text)
    assert parsed == name
    assert parsed.peer_id == name.peer_id
