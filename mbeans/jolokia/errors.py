"""Jolokia's error answers: each exception's status and the Java class name its clients know."""

from __future__ import annotations

from agent.errors import AgentError, DatabaseError, SerializationError
from mbeans.errors import (
    AttributeNotFoundException,
    AttributeNotWritableException,
    IllegalArgumentException,
    InstanceNotFoundException,
    MalformedObjectNameException,
    OperationNotFoundException,
    SecurityException,
)


class UnsupportedOperationException(AgentError):
    """A Jolokia feature this agent does not offer (proxy mode, notifications)."""


# The most specific class first: Jolokia's status for each, and the Java name its clients know.
_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (MalformedObjectNameException, 400, "javax.management.MalformedObjectNameException"),
    (InstanceNotFoundException, 404, "javax.management.InstanceNotFoundException"),
    (AttributeNotFoundException, 404, "javax.management.AttributeNotFoundException"),
    # JMX itself answers a write to a read-only attribute with AttributeNotFoundException.
    (AttributeNotWritableException, 404, "javax.management.AttributeNotFoundException"),
    # Jolokia checks an exec's operation against the MBean's info and refuses an unknown one (or an
    # unknown signature) with IllegalArgumentException, before JMX would raise its ReflectionException.
    (OperationNotFoundException, 400, "java.lang.IllegalArgumentException"),
    (IllegalArgumentException, 400, "java.lang.IllegalArgumentException"),
    (SerializationError, 400, "java.lang.IllegalArgumentException"),  # a malformed id or value
    (SecurityException, 403, "java.lang.SecurityException"),
    (UnsupportedOperationException, 500, "java.lang.UnsupportedOperationException"),
)


def jolokia_error(exc: BaseException) -> tuple[int, str, str]:
    """(status, error_type, message) for an exception, as Jolokia reports it.

    An AgentError raised inside a bean (ReconciliationAlreadyScheduledException, ...) is what JMX
    wraps in an MBeanException; Jolokia unwraps it and answers 500 naming the cause's class, so we
    name the agent's class. Anything else is a bug: its message stays in the log, not the answer.
    """
    for kind, status, java in _ERRORS:
        if isinstance(exc, kind):
            return status, java, str(exc)
    if isinstance(exc, AgentError) and not isinstance(exc, DatabaseError):
        return 500, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc)
    return 500, "java.lang.RuntimeException", "internal error; see the agent's log"


def jmx_error_type(error_type: str) -> str | None:
    """Jolokia 2's error_type_jmx: the class when it is JMX's own (javax.management), else None."""
    return error_type if error_type.startswith("javax.management.") else None
