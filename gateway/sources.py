"""The configured news sources, and how a client's ``?sources=`` picks among them."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    base_url: str

    @property
    def news_url(self) -> str:
        return f"{self.base_url}/news"


class UnknownSourcesError(ValueError):
    def __init__(self, unknown: Sequence[str], valid: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.valid = list(valid)
        names = ", ".join(repr(name) for name in self.unknown) or "none"
        super().__init__(f"unknown source(s) {names}; valid sources: {', '.join(self.valid)}")


def select_sources(configured: Sequence[Source], requested: str | None) -> list[Source]:
    """Return the sources named in ``requested`` (comma-separated), or all when it is None.

    Order follows the request and repeats are dropped. Unknown or empty names raise
    UnknownSourcesError, which lists the valid ones.
    """
    if requested is None:
        return list(configured)
    by_name = {source.name: source for source in configured}
    names = list(dict.fromkeys(requested.split(",")))
    unknown = [name for name in names if name not in by_name]
    if unknown or not names:
        raise UnknownSourcesError(unknown, list(by_name))
    return [by_name[name] for name in names]
