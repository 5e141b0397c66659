"""The management model (MBean names, attributes, operations) and its adapters: JSON-RPC, Jolokia, Prometheus.

Empty until the management plane lands (issue 5); the services never import it.
"""
