"""The configured news sources, and how a client's ``?sources=`` picks among them."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# The name of the one source that is not an HTTP upstream: PostgreSQL, queried by the
# gateway itself (gateway/archive.py).
ARCHIVE = "archive"


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    # An HTTP source's base URL; the archive's server, without its credentials.
    base_url: str
    kind: Literal["http", "archive"] = "http"

    @property
    def news_url(self) -> str:
        return f"{self.base_url}/news"


class UnknownSourcesError(ValueError):
    def __init__(self, unknown: Sequence[str], valid: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.valid = list(valid)
        names = ", ".join(repr(name) for name in self.unknown) or "none"
        super().__init__(f"unknown source(s) {names}; valid sources: {', '.join(self.valid)}")


def select_sources(
    configured: Sequence[Source], requested: str | None, default: Sequence[str] | None = None
) -> list[Source]:
    """Return the sources named in ``requested`` (comma-separated); when it is None, the
    `default` names, or else every HTTP source (the archive is opt-in).

    Order follows the request and repeats are dropped. Unknown or empty names raise
    UnknownSourcesError, which lists the valid ones.
    """
    by_name = {source.name: source for source in configured}
    if requested is None:
        if default is None:
            return [source for source in configured if source.kind == "http"]
        return [by_name[name] for name in default]
    names = list(dict.fromkeys(requested.split(",")))
    unknown = [name for name in names if name not in by_name]
    if unknown or not names:
        raise UnknownSourcesError(unknown, list(by_name))
    return [by_name[name] for name in names]
