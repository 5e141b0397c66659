"""What the operator tools read from a node's node.conf: its management endpoint and its store's URL.

Only those keys, and with the agent's wording of errors: the agent checks the whole file when it
starts (agent.config), and a tool needs neither that loader nor what it imports.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException
from pyparsing import ParseBaseException

from agent.errors import ConfigurationError
from agent.operator_api.layout import TRUST_ROOT_FILE

MANAGEMENT_ADDRESS = "managementAddress"
MANAGEMENT_SSL = "managementSsl.useSsl"
CERTIFICATES_DIRECTORY = "certificatesDirectory"
DATA_SOURCE_URL = "dataSourceProperties.dataSource.url"


@dataclass(frozen=True)
class NodeConf:
    path: Path  # absolute
    management_address: tuple[str, int]
    database_url: str
    management_ssl: bool = True
    certificates_directory: Path | None = None

    @property
    def base_directory(self) -> Path:
        """The node folder: password files sit beside node.conf."""
        return self.path.parent

    @property
    def management_netloc(self) -> str:
        """host:port as a URL holds it ([::1]:10001 for an IPv6 host)."""
        host, port = self.management_address
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"{host}:{port}"

    @property
    def management_url(self) -> str:
        return f"{'https' if self.management_ssl else 'http'}://{self.management_netloc}"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate a client checks the management endpoint's against (None: plain HTTP)."""
        if not self.management_ssl:
            return None
        return (self.certificates_directory or self.base_directory / "certificates") / TRUST_ROOT_FILE


def management_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """What httpx's verify= takes for a management endpoint whose certificate chains to ca_file (None:
    the system's CAs)."""
    return True if ca_file is None else ssl.create_default_context(cafile=str(ca_file))


def _string(tree: ConfigTree, key: str) -> str:
    value = tree.get(key, None)
    if value is None:
        raise ConfigurationError(key, None, "required; it is missing")
    if not isinstance(value, str):
        raise ConfigurationError(key, value, "allowed: a string")
    return value


def read_node_conf(path: Path) -> NodeConf:
    """node.conf's management address and data source URL; errors name the key, as the agent's do."""
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
    address = _string(tree, MANAGEMENT_ADDRESS)
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not (1 <= int(port) <= 65535):
        raise ConfigurationError(
            MANAGEMENT_ADDRESS, address, "allowed: host:port with a port from 1 to 65535"
        )
    ssl = tree.get(MANAGEMENT_SSL, True)
    if not isinstance(ssl, bool):
        raise ConfigurationError(MANAGEMENT_SSL, ssl, "allowed: true or false")
    certificates = tree.get(CERTIFICATES_DIRECTORY, "certificates")
    if not isinstance(certificates, str):
        raise ConfigurationError(CERTIFICATES_DIRECTORY, certificates, "allowed: a string")
    folder = path.resolve().parent
    return NodeConf(
        path.resolve(),
        (host, int(port)),
        _string(tree, DATA_SOURCE_URL),
        management_ssl=ssl,
        certificates_directory=folder / certificates,
    )
