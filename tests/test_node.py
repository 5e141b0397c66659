"""Opening a node from a bootstrapped folder: identity checked against the trust root and the map."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import IdentityError
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.node import open_node


def test_nodes_open_with_their_roles(tmp_path: Path) -> None:
    layout = init_network(tmp_path / "net", default_node_names(2), DEFAULT_NOTARY)
    nodes = [open_node(n.config) for n in layout.nodes]
    try:
        roles = {str(n.identity.name): n.notary is not None for n in nodes}
        assert roles == {str(DEFAULT_NOTARY): True, **{str(x): False for x in default_node_names(2)}}
        party_a = next(n for n in nodes if n.identity.name == X500Name.parse("O=PartyA, L=London, C=GB"))
        assert party_a.store.our_keys == {party_a.key.public}
        assert len(party_a.network_map.nodes) == 3
    finally:
        for n in nodes:
            n.close()


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path: Path) -> None:
    layout = init_network(tmp_path / "net", default_node_names(1), DEFAULT_NOTARY)
    node = layout.nodes[-1]
    KeyPair.generate().write_pem(node.folder / "certificates" / "identity-key.pem")
    with pytest.raises(IdentityError, match="does not hold the key"):
        open_node(node.config)


def test_a_certificate_from_another_network_is_refused(tmp_path: Path) -> None:
    ours = init_network(tmp_path / "ours", default_node_names(1), DEFAULT_NOTARY)
    theirs = init_network(tmp_path / "theirs", default_node_names(1), DEFAULT_NOTARY)
    target = ours.nodes[-1].folder / "certificates"
    source = theirs.nodes[-1].folder / "certificates"
    (target / "identity-cert.pem").write_bytes((source / "identity-cert.pem").read_bytes())
    with pytest.raises(IdentityError):
        open_node(ours.nodes[-1].config)
