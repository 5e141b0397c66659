"""Jolokia (protocol 8.0, Jolokia 2's) over the MBean registry, so that Jolokia clients and tools read
and call the beans.

read, write, exec, search, list and version; POST with one request or a bulk array, and Jolokia's GET
URL forms with its `!` escaping. Answers are application/json unless mimeType (or Accept) asks for
text/plain, as Jolokia agents answer since 2.1. As Jolokia's agent does, every answer is HTTP 200
and the outcome is the JSON `status`; the one exception is authentication: no or wrong credentials
get HTTP 401, and an address backed off after failed logins HTTP 429 with Retry-After, since a client
cannot do anything useful with a JSON body it was not allowed to see. Roles are checked per request
(per entry of a bulk request) through mbeans.access. Compatibility notes: docs/management.md.

    urls.py        paths and GET URLs: `!` escaping, raw URI elements, the request a URL stands for
    paths.py       paths into a value (navigate, replace_at)
    config.py      processing parameters (ignoreErrors, maxDepth, includeRequest, serializeLong, ...)
    changes.py     when list's tree last changed (ifModifiedSince, 304)
    errors.py      each exception's status and Java error_type
    operations.py  read, write, exec, search, list, version
    agent.py       JolokiaAgent: a request's answer, roles checked first
    blueprint.py   /jolokia over HTTP
"""

from __future__ import annotations

from mbeans.jolokia.agent import TYPES, JolokiaAgent
from mbeans.jolokia.blueprint import jolokia_blueprint
from mbeans.jolokia.errors import UnsupportedOperationException, jolokia_error
from mbeans.jolokia.operations import AGENT_ID, PROTOCOL, describe
from mbeans.jolokia.paths import navigate, replace_at
from mbeans.jolokia.urls import get_request, split_path, split_raw_uri_path

__all__ = [
    "AGENT_ID",
    "PROTOCOL",
    "TYPES",
    "JolokiaAgent",
    "UnsupportedOperationException",
    "describe",
    "get_request",
    "jolokia_blueprint",
    "jolokia_error",
    "navigate",
    "replace_at",
    "split_path",
    "split_raw_uri_path",
]
