"""The payload an upstream sends is defined twice, on purpose: the upstream's own model,
and the gateway's model of what it accepts. The two must describe the same document.
Its articles are one model, core.news.Article, on both sides."""

from typing import Any

from pydantic import BaseModel

from gateway.models import UpstreamNews
from upstream.articles import generate_articles
from upstream.main import NewsPayload


def shape(model: type[BaseModel]) -> Any:
    """The model's JSON schema without the names and prose that may differ."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: strip(value)
                for key, value in node.items()
                if key not in {"title", "description"}
            }
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    return strip(model.model_json_schema())


def test_the_gateway_reads_the_news_payload_the_upstream_writes() -> None:
    assert shape(UpstreamNews) == shape(NewsPayload)


def test_an_upstream_answer_validates_as_the_gateways_model() -> None:
    articles = generate_articles("wire", 3)
    payload = NewsPayload(source="wire", instance="wire-1", delay_ms=300, articles=articles)
    parsed = UpstreamNews.model_validate_json(payload.model_dump_json())
    assert parsed.model_dump(mode="json") == payload.model_dump(mode="json")
