"""A part of the composition root (agent.composition): node.conf -> identity checked against the trust root
and the signed map -> the store, the ledger and (on a notary) the notary service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.clock import Clock, SystemClock
from agent.config import NodeConfig, load_node_config
from agent.errors import ConfigurationError, IdentityError
from agent.ledger.contracts import ContractRegistry
from agent.ledger.identity import Party
from agent.ledger.keys import KeyPair
from agent.ledger.shipped import default_contracts
from agent.network.bootstrap import IDENTITY_CERT_FILE, IDENTITY_KEY_FILE
from agent.network.network_map import NetworkMap, SignedNetworkMap
from agent.network.pki import NODE_ROLE, NOTARY_ROLE, read_certificate, verify_certificate
from agent.network.tls import TRUST_ROOT_FILE
from agent.notary.service import NotaryService
from agent.notary.uniqueness import UniquenessProvider
from agent.services.ledger_service import LedgerService
from agent.store.ledger_store import LedgerStore


@dataclass
class Node:
    config: NodeConfig
    identity: Party
    key: KeyPair
    network_map: NetworkMap
    store: LedgerStore
    ledger: LedgerService
    notary: NotaryService | None
    clock: Clock

    def close(self) -> None:
        self.store.close()


def open_node(
    config_path: Path, *, clock: Clock | None = None, contracts: ContractRegistry | None = None
) -> Node:
    """Load the config, check the identity against the trust root and the signed map, open the store."""
    clock = clock or SystemClock()
    config = load_node_config(config_path)
    certs = config.certificates_directory
    trust_root = read_certificate(certs / TRUST_ROOT_FILE)
    role = NOTARY_ROLE if config.notary else NODE_ROLE
    identity = verify_certificate(read_certificate(certs / IDENTITY_CERT_FILE), trust_root, clock, role)
    if identity.name != config.my_legal_name:
        raise IdentityError(f"certificate is for {identity.name}, but myLegalName is {config.my_legal_name}")
    key = KeyPair.read_pem(certs / IDENTITY_KEY_FILE)
    if key.public != identity.owning_key:
        raise IdentityError(
            f"{certs / IDENTITY_KEY_FILE} does not hold the key of {identity.name}'s certificate"
        )
    if not config.network_map_file.is_file():
        raise ConfigurationError(
            "networkMapFile",
            str(config.network_map_file),
            "allowed: the path of the network map file the network operator signed (network-map.json)",
        )
    network_map = SignedNetworkMap.load(config.network_map_file, trust_root, clock)
    if network_map.node(identity.name).party != identity:
        raise IdentityError(f"the network map holds another key for {identity.name}")
    store = LedgerStore(config.database_url, our_keys=[key.public], clock=clock)
    notary = None
    if config.notary:
        notary = NotaryService(identity, key, UniquenessProvider(store.uniqueness, store.unit, clock), clock)
    return Node(
        config=config,
        identity=identity,
        key=key,
        network_map=network_map,
        store=store,
        ledger=LedgerService(store.transactions, contracts or default_contracts()),
        notary=notary,
        clock=clock,
    )
