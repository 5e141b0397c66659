"""The management model's errors, named after their JMX counterparts so that Jolokia clients see the
types they know (`error_type`); the adapters map each to a protocol status (docs/management.md)."""

from __future__ import annotations

from agent.errors import AgentError


class MBeanError(AgentError):
    """A management call that cannot be carried out."""


class MalformedObjectNameException(MBeanError):
    """The text is not an ObjectName (`domain:key=value[,key=value][,*]`)."""

    def __init__(self, text: str, reason: str) -> None:
        self.text, self.reason = text, reason
        super().__init__(f"{text!r} is not an ObjectName: {reason}")


class InstanceNotFoundException(MBeanError):
    """No MBean of that name is registered."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no MBean named {name}")


class InstanceAlreadyExistsException(MBeanError):
    """An MBean of that name is registered already."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"an MBean named {name} is already registered")


class AttributeNotFoundException(MBeanError):
    def __init__(self, bean: str, attribute: str, known: list[str]) -> None:
        self.bean, self.attribute = bean, attribute
        super().__init__(f"no attribute {attribute!r} on {bean}; it has: {', '.join(known) or 'none'}")


class OperationNotFoundException(MBeanError):
    """No operation of that name, or none with that signature or number of arguments."""

    def __init__(self, bean: str, operation: str, detail: str) -> None:
        self.bean, self.operation = bean, operation
        super().__init__(f"no operation {operation} on {bean}: {detail}")


class AttributeNotWritableException(MBeanError):
    def __init__(self, bean: str, attribute: str) -> None:
        self.bean, self.attribute = bean, attribute
        super().__init__(f"attribute {attribute!r} of {bean} is read-only")


class IllegalArgumentException(MBeanError):
    """An argument or value of the wrong type or out of range; the message names it."""


class SecurityException(MBeanError):
    """The caller's role does not allow the call."""
