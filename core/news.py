"""The news contract the upstreams serve and the gateways read: one place for each term."""

from typing import Literal

from pydantic import AwareDatetime, BaseModel

# A source's name: it travels in Server-Timing headers and metric labels, so a plain token.
SOURCE_NAME = r"[a-z][a-z0-9-]{0,31}"

# The faults an upstream can inject (upstream/faults.py), and so the only ones a gateway
# may ask it for.
FaultKind = Literal["error", "hang", "slow-body", "malformed-json", "wrong-shape", "reset"]


class Article(BaseModel):
    id: str
    title: str
    summary: str
    source: str
    # With its offset: a naive time cannot be ordered against the other sources' (a merge
    # of both raised a TypeError, a 500), so a source that sends one sent no news.
    published_at: AwareDatetime
