"""The MBeans of one agent: registered by name, found by name or pattern (no global registry)."""

from __future__ import annotations

import threading

from mbeans.errors import InstanceAlreadyExistsException, InstanceNotFoundException
from mbeans.model import MBean
from mbeans.objectname import ObjectName


def as_name(name: ObjectName | str) -> ObjectName:
    return name if isinstance(name, ObjectName) else ObjectName.parse(name)


class MBeanRegistry:
    def __init__(self) -> None:
        self._beans: dict[str, MBean] = {}
        self._lock = threading.Lock()

    def register(self, bean: MBean) -> MBean:
        if bean.name.is_pattern:
            raise ValueError(f"{bean.name} is a pattern; a bean needs a plain name")
        key = bean.name.canonical
        with self._lock:
            if key in self._beans:
                raise InstanceAlreadyExistsException(key)
            self._beans[key] = bean
        return bean

    def unregister(self, name: ObjectName | str) -> None:
        key = as_name(name).canonical
        with self._lock:
            if self._beans.pop(key, None) is None:
                raise InstanceNotFoundException(key)

    def get(self, name: ObjectName | str) -> MBean:
        key = as_name(name).canonical
        with self._lock:
            bean = self._beans.get(key)
        if bean is None:
            raise InstanceNotFoundException(key)
        return bean

    def query(self, pattern: ObjectName | str | None = None) -> list[MBean]:
        """Beans whose names the pattern matches (all for None), sorted by canonical name."""
        with self._lock:
            beans = sorted(self._beans.values(), key=lambda b: b.name.canonical)
        if pattern is None:
            return beans
        wanted = as_name(pattern)
        return [b for b in beans if wanted.matches(b.name)]

    def names(self) -> list[str]:
        return [b.name.canonical for b in self.query()]

    def __len__(self) -> int:
        return len(self._beans)
