"""Grafana dashboards for ledger-agent, written as Python with grafanalib; `python -m grafana` renders them.

The JSON in grafana/dashboards/ is generated and committed so operators can import it without Python;
CI regenerates it and fails when the committed files differ. Every PromQL expression is built from
the names in mbeans.metrics.
"""
