"""`ledger-agent network inspect`'s text: one line per member of the map, then every problem found."""

from __future__ import annotations

from agent.operator_api.layout import InspectedCertificate, InspectedNetwork


def problems(network: InspectedNetwork) -> list[str]:
    """Every problem found, the map's first, then the root's, each node's, the folder's."""
    found = list(network["map"]["problems"])
    if network["root"]["problem"] is not None:
        found.append(network["root"]["problem"])
    for node in network["nodes"]:
        found += node["problems"]
    return found + network["problems"]


def inspect_text(network: InspectedNetwork) -> str:
    """What an operator reads: the map, the root, a line per node, then problems and warnings."""
    the_map, root = network["map"], network["root"]
    signature = "signature verified" if the_map["signature_verified"] else "SIGNATURE NOT VERIFIED"
    serial = "?" if the_map["serial"] is None else the_map["serial"]
    lines = [
        f"network map {the_map['file']}: serial {serial}, signed by {the_map['signer']}, {signature}",
        f"root CA     {root['file']}: {_validity(root)}",
    ]
    nodes = network["nodes"]
    width = max((len(n["name"]) for n in nodes), default=0)
    for node in nodes:
        addresses = ",".join(node["addresses"]) or "-"
        line = (
            f"  {node['role']:<6} {node['name']:<{width}}  p2p {addresses}  "
            f"management {node['management_url'] or '-'}  identity {_validity(node['identity'])}  "
            f"tls {_validity(node['tls'])}"
        )
        if node["management_tls"] is not None:
            line += f"  management-tls {_validity(node['management_tls'])}"
        line += f"  config {node['config'] or '- (no node folder here)'}"
        line += "  OK" if not node["problems"] else f"  {len(node['problems'])} PROBLEM(S)"
        lines.append(line)
    found = problems(network)
    warnings = [w for node in nodes for w in node["warnings"]]
    notaries = sum(1 for n in nodes if n["role"] == "notary")
    summary = f"{len(nodes) - notaries} node(s), {notaries} notary(ies)"
    if found:
        lines.append(f"{summary}; {len(found)} problem(s):")
        lines += [f"  {p}" for p in found]
    else:
        lines.append(f"{summary}; no problems")
    if warnings:
        lines.append(f"{len(warnings)} warning(s):")
        lines += [f"  {w}" for w in warnings]
    return "\n".join(lines)


def _validity(certificate: InspectedCertificate | None) -> str:
    if certificate is None:
        return "-"
    if certificate["problem"] is not None:
        return "BAD" if certificate["valid_until"] is not None else "MISSING"
    until = certificate["valid_until"]
    return f"until {until[:10]}" if until else "?"
