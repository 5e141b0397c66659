"""The MBean library: the management model and its adapters, JSON-RPC, Jolokia and Prometheus.

model, objectname, registry, access, errors   beans, their names and who may do what
names, metrics                                the agent's bean names and metric names (data only)
jsonrpc, jolokia/, prometheus                 the adapters, each a Flask blueprint over a registry

It imports nothing of the agent but its error root (agent.errors) and version: the agent's own beans,
which read its services, are agent.management.beans. A test keeps it that way.
"""
