"""The page-size contract of every paged read: an integer from 1 to 10,000,000."""

from __future__ import annotations

from agent.errors import ConfigurationError

MIN_PAGE_SIZE, MAX_PAGE_SIZE = 1, 10_000_000


def check_page_size(page_size: int, key: str = "pageSize") -> int:
    """The page size, or a ConfigurationError naming key (a bool is not a size)."""
    if (
        isinstance(page_size, bool)
        or not isinstance(page_size, int)
        or not (MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE)
    ):
        raise ConfigurationError(
            key, page_size, f"allowed: an integer from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE}"
        )
    return page_size
