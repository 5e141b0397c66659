"""node.conf, in HOCON like a Corda node's: typed, and strict about unknown keys and bad values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException
from pyparsing import ParseBaseException

from agent.errors import ConfigurationError, InvalidNameError
from agent.finality.auto_recovery import (
    AUTO_RECOVERY_KEYS,
    AutoRecoverySettings,
    parse_auto_recovery_settings,
)
from agent.flows.faults import FaultPlan
from agent.hospital.policy import HOSPITAL_KEYS, HospitalSettings, parse_duration, parse_hospital_settings
from agent.ledger.identity import X500Name
from agent.login_throttle import (
    LOGIN_THROTTLE_KEYS,
    LoginThrottleSettings,
    parse_login_throttle_settings,
)
from agent.logs.settings import LOGGING_KEYS, LoggingSettings, parse_logging_settings
from agent.network.tls import (
    MANAGEMENT_CERT_FILE,
    MANAGEMENT_KEY_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    TRUST_ROOT_FILE,
    TlsFiles,
)
from agent.passwords import is_hash
from agent.recovery.settings import (
    LEDGER_RECOVERY_KEYS,
    LedgerRecoverySettings,
    parse_ledger_recovery_settings,
)

# key -> (type, required)
_KEYS: dict[str, tuple[type, bool]] = {
    "myLegalName": (str, True),
    "p2pAddress": (str, True),
    "managementAddress": (str, True),
    "dataSourceProperties.dataSource.url": (str, True),
    "certificatesDirectory": (str, False),
    "networkMapFile": (str, True),
    "notary.validating": (bool, False),
    "managementUsers": (list, False),
    "faultInjection": (list, False),
    "ledgerSync.enabled": (bool, False),
    "ledgerSync.configFile": (str, False),
    "p2pThreads": (int, False),
    # Mutual TLS between agents (agent.network.tls); every node of a network must agree.
    "p2pTls": (bool, False),
    # HTTPS on the management endpoint, with its own certificate (as Corda's rpcSettings.useSsl).
    "managementSsl.useSsl": (bool, False),
    "managementSsl.certificate": (str, False),
    "managementSsl.key": (str, False),
    "managementThreads": (int, False),
    # Ledger Recovery's default time window: this far back from now (a HOCON duration).
    "transactionRecoveryPeriod": (object, False),
    # The flow hospital's rules and Corda's flowTimeout: checked by agent.hospital.policy.
    **{key: (object, False) for key in HOSPITAL_KEYS},
    # Automatic finality recovery: checked by agent.finality.auto_recovery.
    **{key: (object, False) for key in AUTO_RECOVERY_KEYS},
    # Ledger Recovery's retries and hold: checked by agent.recovery.settings.
    **{key: (object, False) for key in LEDGER_RECOVERY_KEYS},
    # Failed management logins' back-off: checked by agent.login_throttle.
    **{key: (object, False) for key in LOGIN_THROTTLE_KEYS},
    # The agent's log: level, format, file and its rotation; checked by agent.logs.settings.
    **{key: (object, False) for key in LOGGING_KEYS},
}
# Where LedgerSync's own settings live unless ledgerSync.configFile says otherwise (beside node.conf,
# as a CorDapp's config file sits in the node's directory); a missing file means the defaults.
DEFAULT_LEDGERSYNC_CONFIG = "ledgersync.conf"


# The worker threads of each listener (cheroot's thread pools; agent/http_server.py). Each has its own,
# so long peer sessions cannot hold up management calls, nor the other way round.
DEFAULT_P2P_THREADS = 16
DEFAULT_MANAGEMENT_THREADS = 8
MAX_THREADS = 256

ROLE_READ_ONLY = "read-only"  # reads, statuses, metrics
ROLE_OPERATOR = "operator"  # also flows, writes, stop, kill
ROLES = (ROLE_READ_ONLY, ROLE_OPERATOR)


@dataclass(frozen=True)
class ManagementUser:
    username: str
    password_hash: str = field(repr=False)
    role: str = ROLE_READ_ONLY


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """What one node's agent needs to start; paths are absolute."""

    path: Path
    my_legal_name: X500Name
    p2p_address: tuple[str, int]
    management_address: tuple[str, int]
    database_url: str
    certificates_directory: Path
    network_map_file: Path
    notary: bool
    notary_validating: bool
    management_users: tuple[ManagementUser, ...] = ()
    fault_injection: tuple[str, ...] = ()
    ledgersync_enabled: bool = False
    ledgersync_config_file: Path | None = None
    p2p_threads: int = DEFAULT_P2P_THREADS
    management_threads: int = DEFAULT_MANAGEMENT_THREADS
    hospital: HospitalSettings = field(default_factory=HospitalSettings)
    finality_recovery: AutoRecoverySettings = field(default_factory=AutoRecoverySettings)
    transaction_recovery_period: timedelta | None = None
    ledger_recovery: LedgerRecoverySettings = field(default_factory=LedgerRecoverySettings)
    management_logins: LoginThrottleSettings = field(default_factory=LoginThrottleSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    p2p_tls: bool = True
    management_ssl: bool = True
    management_certificate: Path | None = None  # None: certificatesDirectory/management.pem
    management_key: Path | None = None

    @property
    def base_directory(self) -> Path:
        return self.path.parent

    @property
    def trust_root_file(self) -> Path:
        """The network's root certificate, which peers' TLS certificates must chain to."""
        return self.certificates_directory / TRUST_ROOT_FILE

    @property
    def p2p_tls_files(self) -> TlsFiles:
        folder = self.certificates_directory
        return TlsFiles(folder / TLS_CERT_FILE, folder / TLS_KEY_FILE, self.trust_root_file)

    @property
    def management_tls_files(self) -> TlsFiles:
        folder = self.certificates_directory
        return TlsFiles(
            self.management_certificate or folder / MANAGEMENT_CERT_FILE,
            self.management_key or folder / MANAGEMENT_KEY_FILE,
            self.trust_root_file,
        )


def flatten(tree: ConfigTree, prefix: str = "") -> dict[str, Any]:
    """A HOCON tree as dotted keys ("dataSourceProperties.dataSource.url"); lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, ConfigTree):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _address(key: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not (1 <= int(port) <= 65535):
        raise ConfigurationError(key, value, "allowed: host:port with a port from 1 to 65535")
    return host, int(port)


def load_node_config(path: Path) -> NodeConfig:
    """Read and check node.conf; every error names the key, the value and what is allowed."""
    try:
        tree = ConfigFactory.parse_file(str(path))
    except FileNotFoundError as exc:
        if path.is_file():  # a file it includes is missing
            raise ConfigurationError("node.conf", str(path), f"must be valid HOCON: {exc}") from exc
        raise ConfigurationError("--config", str(path), "allowed: the path of an existing node.conf") from exc
    except (ConfigException, ParseBaseException) as exc:
        raise ConfigurationError("node.conf", str(path), f"must be valid HOCON: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:  # a folder, unreadable, or not UTF-8 text
        raise ConfigurationError(
            "--config", str(path), f"allowed: a readable UTF-8 node.conf: {exc}"
        ) from exc
    flat = flatten(tree)
    notary_section = "notary" in tree
    for key, value in flat.items():
        if key not in _KEYS:
            raise ConfigurationError(key, value, f"unknown key; allowed: {', '.join(sorted(_KEYS))}")
        kind, _ = _KEYS[key]
        if kind is bool and not isinstance(value, bool):
            raise ConfigurationError(key, value, "allowed: true or false")
        if kind is str and not isinstance(value, str):
            raise ConfigurationError(key, value, "allowed: a string")
        if kind is list and not isinstance(value, list):
            raise ConfigurationError(key, value, "allowed: a list [...]")
        if kind is int and (
            not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_THREADS
        ):
            raise ConfigurationError(key, value, f"allowed: a whole number from 1 to {MAX_THREADS}")
    for key, (_, required) in _KEYS.items():
        if required and key not in flat:
            raise ConfigurationError(key, None, "required; it is missing")
    try:
        name = X500Name.parse(flat["myLegalName"])
    except InvalidNameError as exc:
        raise ConfigurationError("myLegalName", flat["myLegalName"], str(exc)) from exc
    base = path.resolve().parent
    faults = tuple(str(f) for f in flat.get("faultInjection", []))
    FaultPlan.parse(faults)  # refuse a bad entry now, naming the key
    hospital = parse_hospital_settings(flat)
    finality_recovery = parse_auto_recovery_settings(flat)
    period = None
    if "transactionRecoveryPeriod" in flat:
        seconds = parse_duration(
            "transactionRecoveryPeriod", flat["transactionRecoveryPeriod"], allow_zero=False
        )
        period = timedelta(seconds=seconds)
    return NodeConfig(
        path=path.resolve(),
        my_legal_name=name,
        p2p_address=_address("p2pAddress", flat["p2pAddress"]),
        management_address=_address("managementAddress", flat["managementAddress"]),
        database_url=flat["dataSourceProperties.dataSource.url"],
        certificates_directory=base / flat.get("certificatesDirectory", "certificates"),
        network_map_file=base / flat["networkMapFile"],
        notary=notary_section,
        notary_validating=bool(flat.get("notary.validating", False)),
        management_users=_users(flat.get("managementUsers", [])),
        fault_injection=faults,
        # On by default on a node, off on a notary (it has no vault to reconcile).
        ledgersync_enabled=bool(flat.get("ledgerSync.enabled", not notary_section)),
        ledgersync_config_file=base / flat.get("ledgerSync.configFile", DEFAULT_LEDGERSYNC_CONFIG),
        p2p_threads=int(flat.get("p2pThreads", DEFAULT_P2P_THREADS)),
        management_threads=int(flat.get("managementThreads", DEFAULT_MANAGEMENT_THREADS)),
        hospital=hospital,
        finality_recovery=finality_recovery,
        transaction_recovery_period=period,
        ledger_recovery=parse_ledger_recovery_settings(flat),
        management_logins=parse_login_throttle_settings(flat),
        logging=parse_logging_settings(flat, base),
        p2p_tls=bool(flat.get("p2pTls", True)),
        management_ssl=bool(flat.get("managementSsl.useSsl", True)),
        management_certificate=_path(base, flat.get("managementSsl.certificate")),
        management_key=_path(base, flat.get("managementSsl.key")),
    )


def _path(base: Path, value: str | None) -> Path | None:
    return None if value is None else base / value


def _users(entries: list[Any]) -> tuple[ManagementUser, ...]:
    key = "managementUsers"
    allowed = 'allowed: [{ username = "...", role = operator|read-only, passwordHash = "pbkdf2_sha256$..." }]'
    users = []
    for i, entry in enumerate(entries):
        keys = set(entry.keys()) if isinstance(entry, ConfigTree) else set()
        if not {"username", "passwordHash"} <= keys or keys - {"username", "passwordHash", "role"}:
            raise ConfigurationError(f"{key}[{i}]", sorted(keys) or entry, allowed)
        # Least privilege: a user written without a role may read, not act.
        role = entry.get("role", ROLE_READ_ONLY)
        if role not in ROLES:
            raise ConfigurationError(f"{key}[{i}].role", role, f"allowed: {' or '.join(ROLES)}")
        name, hashed = entry.get("username"), entry.get("passwordHash")
        if not isinstance(name, str) or not name or not isinstance(hashed, str) or not is_hash(hashed):
            # The value may be a password typed in clear: never echo it back.
            raise ConfigurationError(f"{key}[{i}].passwordHash", "(hidden)", allowed)
        users.append(ManagementUser(name, hashed, role))
    if len({u.username for u in users}) != len(users):
        raise ConfigurationError(key, [u.username for u in users], "allowed: each username once")
    return tuple(users)
