"""The network's PKI: one root CA that certifies every identity, and the checks a node runs on them.

A local network has a single trust root. It signs each participant's identity certificate directly (no
intermediate CAs), so verifying an identity is one signature check against the root plus the usual
name, validity-period and key-type checks.

Why the role is in the certificate: a node certificate must not be usable to sign the network map, and a
notary must be told apart from a node by the map's signer, not only by what the map says. We record the
role as an ExtendedKeyUsage with a private OID, one OID per role. EKU is the extension RFC 5280 provides
for "what this key may be used for", every X.509 tool prints it, and a verifier that does not know our
OIDs simply sees a purpose it does not serve. The OIDs live under 2.25 (ITU-T X.667: an arc derived from
a UUID), so we need no registered enterprise number and cannot collide with anyone else's.

Ed25519 throughout: certificates are signed with it (no separate digest) and carry Ed25519 keys.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from agent.clock import Clock
from agent.errors import IdentityError, InvalidNameError
from agent.files import write_private
from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair, PublicKey

NODE_ROLE = "node"
NOTARY_ROLE = "notary"
NETWORK_MAP_ROLE = "network-map"
ROLES = (NODE_ROLE, NOTARY_ROLE, NETWORK_MAP_ROLE)

# 2.25.<UUID 5a306579-c521-4005-96f6-747ee39d4b1c as an integer>: ledger-agent's private arc.
_ARC = "2.25.119881808040838477153628662105913510684"
ROLE_OIDS: dict[str, x509.ObjectIdentifier] = {
    NODE_ROLE: x509.ObjectIdentifier(f"{_ARC}.1.1"),
    NOTARY_ROLE: x509.ObjectIdentifier(f"{_ARC}.1.2"),
    NETWORK_MAP_ROLE: x509.ObjectIdentifier(f"{_ARC}.1.3"),
}
_ROLE_BY_OID = {oid: role for role, oid in ROLE_OIDS.items()}

ROOT_VALIDITY_DAYS = 3650
# Identity certificates are clamped to the root's lifetime anyway; a local network should not break
# a year after it was bootstrapped.
CERTIFICATE_VALIDITY_DAYS = 3650

# DER order, most general first, so that RFC 4514 printing (which reverses it) reads
# "CN=..., OU=..., O=..., L=..., ST=..., C=..." like X500Name.__str__.
_NAME_OIDS = (
    ("C", NameOID.COUNTRY_NAME),
    ("ST", NameOID.STATE_OR_PROVINCE_NAME),
    ("L", NameOID.LOCALITY_NAME),
    ("O", NameOID.ORGANIZATION_NAME),
    ("OU", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("CN", NameOID.COMMON_NAME),
)
_KEY_BY_OID = {oid: key for key, oid in _NAME_OIDS}


def _name_values(name: X500Name) -> dict[str, str | None]:
    return {
        "C": name.country,
        "ST": name.state,
        "L": name.locality,
        "O": name.organisation,
        "OU": name.organisation_unit,
        "CN": name.common_name,
    }


def x509_name(name: X500Name) -> x509.Name:
    """The X.509 subject (or issuer) for an X500Name: one attribute per RDN, CN to C."""
    values = _name_values(name)
    return x509.Name(
        [x509.NameAttribute(oid, value) for key, oid in _NAME_OIDS if (value := values[key]) is not None]
    )


def name_from_certificate(cert: x509.Certificate) -> X500Name:
    """The certificate subject as an X500Name; raises InvalidNameError when it breaks X500Name's rules."""
    return name_from_x509(cert.subject)


def name_from_x509(subject: x509.Name) -> X500Name:
    """The reverse of x509_name; raises InvalidNameError for attributes an X500Name cannot hold."""
    text = subject.rfc4514_string()
    found: dict[str, str] = {}
    for rdn in subject.rdns:
        for attribute in rdn:
            key = _KEY_BY_OID.get(attribute.oid)
            if key is None:
                raise InvalidNameError(text, attribute.oid.dotted_string, "not supported in an X500Name")
            if key in found:
                raise InvalidNameError(text, key, "duplicated")
            value = attribute.value
            found[key] = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return X500Name.from_attributes(found, text)


def public_key_of(cert: x509.Certificate) -> PublicKey:
    """The certificate's Ed25519 key; any other key type is refused."""
    key = cert.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise IdentityError(f"certificate {_subject(cert)}: key is {type(key).__name__}, not Ed25519")
    return PublicKey.from_cryptography(key)


def certificate_role(cert: x509.Certificate) -> str:
    """The role ("node", "notary", "network-map") recorded in the certificate."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise IdentityError(f"certificate {_subject(cert)}: no role (extended key usage missing)") from None
    except ValueError as exc:
        raise IdentityError(f"certificate {_subject(cert)}: malformed extensions: {exc}") from exc
    roles = [_ROLE_BY_OID[oid] for oid in usage if oid in _ROLE_BY_OID]
    if len(roles) != 1:
        raise IdentityError(f"certificate {_subject(cert)}: expected exactly one role, found {roles}")
    return roles[0]


def _subject(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string())


def _check_role(role: str) -> None:
    if role not in ROLE_OIDS:
        raise IdentityError(f"unknown certificate role {role!r}; expected one of {', '.join(ROLES)}")


def _key_identifier(key: PublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.to_cryptography())


def _whole_seconds(moment: datetime) -> datetime:
    # X.509 times have one-second resolution; truncating here keeps "issued now" valid now.
    return moment.replace(microsecond=0)


def create_root_ca(
    name: X500Name, clock: Clock, validity_days: int = ROOT_VALIDITY_DAYS
) -> tuple[KeyPair, x509.Certificate]:
    """A fresh key and its self-signed CA certificate: the trust root of a network."""
    key = KeyPair.generate()
    subject = x509_name(name)
    not_before = _whole_seconds(clock.now())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public.to_cryptography())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=validity_days))
        # path_length=0: the root signs identities directly, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(_key_identifier(key.public), critical=False)
        .sign(key.private_key, None)
    )
    return key, cert


def issue_certificate(
    issuer_key: KeyPair,
    issuer_cert: x509.Certificate,
    subject: X500Name,
    subject_key: PublicKey,
    role: str,
    clock: Clock,
    validity_days: int = CERTIFICATE_VALIDITY_DAYS,
) -> x509.Certificate:
    """An end-entity certificate for subject's key, in the given role, signed by the CA."""
    _check_role(role)
    return issue_end_entity(
        issuer_key, issuer_cert, subject, subject_key, [ROLE_OIDS[role]], clock, validity_days=validity_days
    )


def issue_end_entity(
    issuer_key: KeyPair,
    issuer_cert: x509.Certificate,
    subject: X500Name,
    subject_key: PublicKey,
    purposes: list[x509.ObjectIdentifier],
    clock: Clock,
    *,
    alternative_names: list[x509.GeneralName] | None = None,
    validity_days: int = CERTIFICATE_VALIDITY_DAYS,
) -> x509.Certificate:
    """A certificate for subject's key, for those purposes (ExtendedKeyUsage: a role's OID, or TLS's
    serverAuth and clientAuth), with those subjectAltNames, signed by the CA; never a CA itself."""
    if public_key_of(issuer_cert) != issuer_key.public:
        raise IdentityError(f"issuer key does not match issuer certificate {_subject(issuer_cert)}")
    now = _whole_seconds(clock.now())
    # Never outlive (or predate) the issuer: a chain is only as valid as its weakest link.
    not_before = max(now, issuer_cert.not_valid_before_utc)
    not_after = min(now + timedelta(days=validity_days), issuer_cert.not_valid_after_utc)
    if not_after <= not_before:
        raise IdentityError(f"issuer certificate {_subject(issuer_cert)} is not valid at {now.isoformat()}")
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509_name(subject))
        .issuer_name(issuer_cert.subject)
        .public_key(subject_key.to_cryptography())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        .add_extension(_key_identifier(subject_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public.to_cryptography()),
            critical=False,
        )
    )
    if alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    return builder.sign(issuer_key.private_key, None)


def _check_validity(cert: x509.Certificate, what: str, now: datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise IdentityError(
            f"{what} {_subject(cert)} is not yet valid: valid from "
            f"{cert.not_valid_before_utc.isoformat()}, now {now.isoformat()}"
        )
    if now > cert.not_valid_after_utc:
        raise IdentityError(
            f"{what} {_subject(cert)} has expired: valid until "
            f"{cert.not_valid_after_utc.isoformat()}, now {now.isoformat()}"
        )


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        raise IdentityError(f"certificate {_subject(cert)}: malformed extensions: {exc}") from exc


def signed_by(cert: x509.Certificate, key: Ed25519PublicKey) -> bool:
    """cert's signature verifies against key (an Ed25519 CA's)."""
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes)
    except InvalidSignature:
        return False
    return True


def _check_trust_root(trust_root: x509.Certificate, now: datetime) -> Ed25519PublicKey:
    key = trust_root.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise IdentityError(f"trust root {_subject(trust_root)}: key is not Ed25519")
    constraints = _basic_constraints(trust_root)
    if constraints is None or not constraints.ca:
        raise IdentityError(f"trust root {_subject(trust_root)} is not a CA certificate")
    _check_validity(trust_root, "trust root", now)
    return key


def verify_certificate(
    cert: x509.Certificate, trust_root: x509.Certificate, clock: Clock, expected_role: str | None = None
) -> Party:
    """Check cert was issued by trust_root, is valid now and has the role; return its Party.

    Raises IdentityError naming the subject and what failed.
    """
    if expected_role is not None:
        _check_role(expected_role)
    now = clock.now()
    root_key = _check_trust_root(trust_root, now)
    if cert.issuer != trust_root.subject:
        raise IdentityError(
            f"certificate {_subject(cert)}: issuer {cert.issuer.rfc4514_string()!r} is not the trust root "
            f"{trust_root.subject.rfc4514_string()!r}"
        )
    if not signed_by(cert, root_key):
        raise IdentityError(f"certificate {_subject(cert)}: signature does not verify against the trust root")
    _check_validity(cert, "certificate", now)
    constraints = _basic_constraints(cert)
    if constraints is not None and constraints.ca:
        raise IdentityError(f"certificate {_subject(cert)} is a CA certificate, not an identity")
    role = certificate_role(cert)
    if expected_role is not None and role != expected_role:
        raise IdentityError(f"certificate {_subject(cert)}: role is {role!r}, expected {expected_role!r}")
    key = public_key_of(cert)
    try:
        name = name_from_certificate(cert)
    except InvalidNameError as exc:
        raise IdentityError(f"certificate {_subject(cert)}: subject is not a valid name: {exc}") from exc
    return Party(name, key)


def certificate_to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_from_pem(data: str | bytes, source: str = "certificate") -> x509.Certificate:
    """Parse one PEM certificate; source names it in the error."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        return x509.load_pem_x509_certificate(raw)
    except ValueError as exc:
        raise IdentityError(f"{source}: not a PEM certificate: {exc}") from exc


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    """The certificate as PEM, 0600 like every file of a node's (agent.files)."""
    write_private(path, certificate_to_pem(cert))


def read_certificate(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(f"{path}: certificate file not found") from None
    return certificate_from_pem(data, str(path))
