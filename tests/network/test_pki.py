from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.clock import ManualClock
from agent.errors import IdentityError, InvalidNameError
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.network.pki import (
    NETWORK_MAP_ROLE,
    NODE_ROLE,
    NOTARY_ROLE,
    ROLE_OIDS,
    certificate_from_pem,
    certificate_role,
    create_root_ca,
    issue_certificate,
    name_from_certificate,
    name_from_x509,
    read_certificate,
    verify_certificate,
    write_certificate,
    x509_name,
)

START = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
ROOT_NAME = X500Name.parse("CN=Test Root, O=Operator, L=London, C=GB")
ALICE = X500Name.parse("O=Alice, L=London, C=GB")


def _issue(
    role: str = NODE_ROLE, name: X500Name = ALICE, days: int = 30
) -> tuple[ManualClock, x509.Certificate, KeyPair, x509.Certificate]:
    clock = ManualClock(START)
    root_key, root = create_root_ca(ROOT_NAME, clock)
    key = KeyPair.generate()
    cert = issue_certificate(root_key, root, name, key.public, role, clock, validity_days=days)
    return clock, root, key, cert


def test_root_ca_is_a_self_signed_ca() -> None:
    key, root = create_root_ca(ROOT_NAME, ManualClock(START))
    assert root.subject == root.issuer
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public.to_cryptography())
    root.verify_directly_issued_by(root)
    assert name_from_certificate(root) == ROOT_NAME


def test_issued_certificate_verifies_and_yields_the_party() -> None:
    clock, root, key, cert = _issue()
    party = verify_certificate(cert, root, clock, expected_role=NODE_ROLE)
    assert party.name == ALICE
    assert party.owning_key == key.public
    assert verify_certificate(cert, root, clock).name == ALICE
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest


@pytest.mark.parametrize("role", [NODE_ROLE, NOTARY_ROLE, NETWORK_MAP_ROLE])
def test_role_is_recorded_in_the_certificate(role: str) -> None:
    clock, root, _, cert = _issue(role)
    assert certificate_role(cert) == role
    verify_certificate(cert, root, clock, expected_role=role)


def test_wrong_role_is_refused() -> None:
    clock, root, _, cert = _issue(NODE_ROLE)
    with pytest.raises(IdentityError, match=r"O=Alice.*role is 'node', expected 'network-map'"):
        verify_certificate(cert, root, clock, expected_role=NETWORK_MAP_ROLE)


def test_unknown_role_is_refused_when_issuing() -> None:
    clock = ManualClock(START)
    root_key, root = create_root_ca(ROOT_NAME, clock)
    with pytest.raises(IdentityError, match="unknown certificate role 'admin'"):
        issue_certificate(root_key, root, ALICE, KeyPair.generate().public, "admin", clock)


def test_issuer_key_must_match_issuer_certificate() -> None:
    clock = ManualClock(START)
    _, root = create_root_ca(ROOT_NAME, clock)
    with pytest.raises(IdentityError, match="issuer key does not match"):
        issue_certificate(KeyPair.generate(), root, ALICE, KeyPair.generate().public, NODE_ROLE, clock)


def test_certificate_from_another_ca_with_the_same_name_is_refused() -> None:
    clock, root, _, _ = _issue()
    impostor_key, impostor_root = create_root_ca(ROOT_NAME, clock)
    forged = issue_certificate(
        impostor_key, impostor_root, ALICE, KeyPair.generate().public, NODE_ROLE, clock
    )
    with pytest.raises(IdentityError, match=r"O=Alice.*signature does not verify"):
        verify_certificate(forged, root, clock)


def test_certificate_from_a_differently_named_ca_is_refused() -> None:
    clock, root, _, _ = _issue()
    other_key, other_root = create_root_ca(X500Name.parse("O=Other, L=Paris, C=FR"), clock)
    cert = issue_certificate(other_key, other_root, ALICE, KeyPair.generate().public, NODE_ROLE, clock)
    with pytest.raises(IdentityError, match=r"O=Alice.*issuer .*O=Other.* is not the trust root"):
        verify_certificate(cert, root, clock)


def test_expired_certificate_is_refused() -> None:
    _, root, _, cert = _issue(days=30)
    # The end of the period is inclusive; one second later the certificate is dead.
    at_end = ManualClock(cert.not_valid_after_utc)
    verify_certificate(cert, root, at_end)
    at_end.advance(timedelta(seconds=1))
    with pytest.raises(IdentityError, match=r"O=Alice.*has expired"):
        verify_certificate(cert, root, at_end)


def test_not_yet_valid_certificate_is_refused() -> None:
    clock = ManualClock(START)
    root_key, root = create_root_ca(ROOT_NAME, clock)
    clock.advance(timedelta(days=1))
    cert = issue_certificate(root_key, root, ALICE, KeyPair.generate().public, NODE_ROLE, clock)
    earlier = ManualClock(START + timedelta(hours=1))
    with pytest.raises(IdentityError, match=r"^certificate 'O=Alice.*' is not yet valid"):
        verify_certificate(cert, root, earlier)


def test_not_yet_valid_trust_root_is_refused() -> None:
    _, root, _, cert = _issue()
    with pytest.raises(IdentityError, match=r"^trust root .* is not yet valid"):
        verify_certificate(cert, root, ManualClock(START - timedelta(seconds=1)))


def test_issued_now_is_valid_now_despite_sub_second_clock() -> None:
    clock, root, _, cert = _issue()
    assert cert.not_valid_before_utc == START.replace(microsecond=0)
    verify_certificate(cert, root, clock)


def test_expired_trust_root_is_refused() -> None:
    clock = ManualClock(START)
    root_key, root = create_root_ca(ROOT_NAME, clock, validity_days=10)
    cert = issue_certificate(root_key, root, ALICE, KeyPair.generate().public, NODE_ROLE, clock)
    clock.advance(timedelta(days=11))
    with pytest.raises(IdentityError, match=r"trust root .* has expired"):
        verify_certificate(cert, root, clock)


def test_certificate_never_outlives_its_issuer() -> None:
    clock = ManualClock(START)
    root_key, root = create_root_ca(ROOT_NAME, clock, validity_days=10)
    cert = issue_certificate(root_key, root, ALICE, KeyPair.generate().public, NODE_ROLE, clock, 365)
    assert cert.not_valid_after_utc == root.not_valid_after_utc
    clock.advance(timedelta(days=11))
    with pytest.raises(IdentityError, match="not valid at"):
        issue_certificate(root_key, root, ALICE, KeyPair.generate().public, NODE_ROLE, clock)


def test_the_root_itself_is_not_an_identity() -> None:
    clock, root, _, _ = _issue()
    with pytest.raises(IdentityError, match="is a CA certificate"):
        verify_certificate(root, root, clock)


def test_a_node_certificate_is_not_a_trust_root() -> None:
    clock, _, _, cert = _issue()
    with pytest.raises(IdentityError, match="is not a CA certificate"):
        verify_certificate(cert, cert, clock)


def test_non_ed25519_key_is_refused() -> None:
    clock = ManualClock(START)
    root_key, root = create_root_ca(ROOT_NAME, clock)
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509_name(ALICE))
        .issuer_name(root.subject)
        .public_key(ec_key)
        .serial_number(1)
        .not_valid_before(START - timedelta(days=1))
        .not_valid_after(START + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ROLE_OIDS[NODE_ROLE]]), critical=False)
        .sign(root_key.private_key, None)
    )
    with pytest.raises(IdentityError, match=r"O=Alice.*not Ed25519"):
        verify_certificate(cert, root, clock)


def test_certificate_without_a_role_is_refused() -> None:
    clock = ManualClock(START)
    root_key, root = create_root_ca(ROOT_NAME, clock)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509_name(ALICE))
        .issuer_name(root.subject)
        .public_key(KeyPair.generate().public.to_cryptography())
        .serial_number(1)
        .not_valid_before(START - timedelta(days=1))
        .not_valid_after(START + timedelta(days=1))
        .sign(root_key.private_key, None)
    )
    with pytest.raises(IdentityError, match="no role"):
        verify_certificate(cert, root, clock)


def test_subject_with_attributes_outside_x500name_is_refused() -> None:
    clock = ManualClock(START)
    root_key, root = create_root_ca(ROOT_NAME, clock)
    subject = x509.Name([*x509_name(ALICE), x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@example.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root.subject)
        .public_key(KeyPair.generate().public.to_cryptography())
        .serial_number(1)
        .not_valid_before(START - timedelta(days=1))
        .not_valid_after(START + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ROLE_OIDS[NODE_ROLE]]), critical=False)
        .sign(root_key.private_key, None)
    )
    with pytest.raises(InvalidNameError, match="not supported"):
        name_from_certificate(cert)
    with pytest.raises(IdentityError, match="subject is not a valid name"):
        verify_certificate(cert, root, clock)


def test_subject_missing_a_required_attribute_is_refused() -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Alice")])
    with pytest.raises(InvalidNameError, match="attribute L: required but missing"):
        name_from_x509(subject)


def test_full_name_round_trips_in_x500_order() -> None:
    name = X500Name.parse("CN=Clearing, OU=Payments, O=Bank Zürich, L=Zürich, ST=Zürich, C=CH")
    subject = x509_name(name)
    assert subject.rfc4514_string() == "CN=Clearing,OU=Payments,O=Bank Zürich,L=Zürich,ST=Zürich,C=CH"
    assert name_from_x509(subject) == name
    _, _, _, cert = _issue(name=name)
    assert name_from_certificate(cert) == name


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéüßÅ"
# Values an X500Name accepts by construction: a word of letters, then words that may hold digits and
# the punctuation real organisation names use, separated by single spaces.
_VALUES = st.builds(
    lambda first, rest: " ".join([first, *rest]),
    st.text(alphabet=_LETTERS, min_size=2, max_size=10),
    st.lists(st.text(alphabet=_LETTERS + "0123456789.&'-()", min_size=1, max_size=8), max_size=4),
)


@settings(max_examples=200)
@given(
    organisation=_VALUES,
    locality=_VALUES,
    country=st.sampled_from(["GB", "US", "CH", "ZZ"]),
    common_name=st.none() | _VALUES,
    unit=st.none() | _VALUES,
    state=st.none() | _VALUES,
)
def test_any_valid_name_round_trips_through_x509(
    organisation: str,
    locality: str,
    country: str,
    common_name: str | None,
    unit: str | None,
    state: str | None,
) -> None:
    name = X500Name(organisation, locality, country, common_name, unit, state)
    assert name_from_x509(x509_name(name)) == name


def test_pem_round_trip(tmp_path: Path) -> None:
    *_, cert = _issue()
    path = tmp_path / "cert.pem"
    write_certificate(path, cert)
    assert path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert read_certificate(path) == cert
    assert certificate_from_pem(path.read_bytes()) == cert


def test_bad_pem_is_an_identity_error(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    path.write_text("not a certificate")
    with pytest.raises(IdentityError, match=r"cert\.pem: not a PEM certificate"):
        read_certificate(path)
    with pytest.raises(IdentityError, match=r"missing\.pem: certificate file not found"):
        read_certificate(tmp_path / "missing.pem")
