"""ObjectName parsing, canonical form and pattern matching, as JMX defines them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbeans.errors import MalformedObjectNameException
from mbeans.objectname import ObjectName, quote


def test_keys_are_unordered_and_the_canonical_form_sorts_them() -> None:
    a = ObjectName.parse("ledgeragent:type=LedgerSync,name=x")
    b = ObjectName.parse("ledgeragent:name=x,type=LedgerSync")
    assert a.canonical == b.canonical == "ledgeragent:name=x,type=LedgerSync"
    assert a.key("type") == "LedgerSync" and a.key("absent") is None
    assert not a.is_pattern


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("no-colon", "no ':'"),
        ("d:", "an empty property"),
        ("d:type", "has no '='"),
        ("d:=x", "key ''"),
        ("d:ty*pe=x", "key 'ty*pe'"),
        ("d:a=1,a=2", "appears twice"),
        ("d:a=1,,b=2", "an empty property"),
        ("d:a=x,", "an empty property"),
        ('d:a="open', "not closed"),
        ("d:a=b:c", "holds one of"),
        ('d:a="bad\\escape"', "bad escape"),
        ("d:a=", "is empty"),
        ("d:*,*", "'*' twice"),
    ],
)
def test_malformed_names_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(MalformedObjectNameException, match=reason.replace("*", r"\*").replace("(", r"\(")):
        ObjectName.parse(text)


def test_quoted_values_keep_special_characters() -> None:
    name = ObjectName.parse('d:name="O=PartyB, L=London, C=GB",type=Peer')
    assert name.key("name") == "O=PartyB, L=London, C=GB"
    assert ObjectName.parse('d:name="a\\"b\\\\c\\nd"').key("name") == 'a"b\\c\nd'


def test_patterns_match_domains_values_and_extra_keys() -> None:
    sync = ObjectName.parse("ledgeragent:type=LedgerSync")
    graph = ObjectName.parse("ledgeragent:type=LedgerGraph")
    peer = ObjectName.parse("ledgeragent:type=Peer,name=B")
    assert ObjectName.parse("ledgeragent:*").matches(peer)
    assert ObjectName.parse("ledger*:type=LedgerSync").matches(sync)
    assert ObjectName.parse("ledgeragen?:type=LedgerSync").matches(sync)
    assert not ObjectName.parse("ledgeragen?:type=LedgerSync").matches(
        ObjectName.parse("ledgeragent2:type=LedgerSync")
    )
    assert ObjectName.parse("ledgeragent:type=Ledger*").matches(graph)
    assert not ObjectName.parse("ledgeragent:type=Ledger*").matches(peer)
    assert ObjectName.parse("ledgeragent:type=Peer,*").matches(peer)
    assert not ObjectName.parse("ledgeragent:type=Peer").matches(peer)  # a plain name matches itself only
    assert ObjectName.parse("ledgeragent:name=B,type=Peer").matches(peer)
    assert ObjectName.parse("ledgeragent:type=Peer,*").is_pattern
    assert ObjectName.parse("ledgeragent:type=Peer,*").canonical == "ledgeragent:type=Peer,*"


values = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@given(values, values)
def test_any_value_survives_quoting_and_parsing(a: str, b: str) -> None:
    name = ObjectName.parse(f"dom:a={quote(a)},b={quote(b)}")
    assert name.key("a") == a and name.key("b") == b
    assert ObjectName.parse(name.canonical) == ObjectName(name.domain, tuple(sorted(name.properties)))


def test_escaped_wildcards_in_quoted_values_are_literal() -> None:
    literal = ObjectName.parse('d:name="a\\*b"')
    assert not literal.is_pattern and literal.key("name") == "a*b"
    wild = ObjectName.parse('d:name="a*"')
    assert wild.is_pattern and wild.matches(ObjectName.parse('d:name="abc"'))
    assert literal.matches(ObjectName.parse('d:name="a\\*b"'))
    assert not literal.matches(ObjectName.parse('d:name="axb"'))


@given(values)
def test_a_quoted_value_is_never_a_pattern(a: str) -> None:
    assert not ObjectName.parse(f"dom:a={quote(a)}").is_pattern
