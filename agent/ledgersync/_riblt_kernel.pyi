from typing import Any

def accumulate(
    ids: Any, picked: Any, checks: Any, seeds: Any, nxt: Any, start: int, acc: Any, counts: Any, /
) -> None: ...
