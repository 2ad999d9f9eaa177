"""claims.md and claims.json: the verdict table and every figure behind it."""

from dataclasses import asdict
from pathlib import Path

from bench.experiments.claims.model import Claims
from bench.harness.results import write_json


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(claims: Claims) -> str:
    meta = claims.meta
    lines = [
        "# The blog post's claims, measured",
        "",
        f"`{meta['command']}` (preset {claims.preset}), {meta['started_at']}, commit"
        f" {meta['commit']}, {meta['machine']}. Sources' delays as the gateway saw them:"
        f" {', '.join(f'{name} {ms:g} ms' for name, ms in claims.delays_ms.items())}.",
        "Each ratio comes from this run, over an ideal from this run's own calibration."
        " The post: ../shared/seed/sync-vs-async-in-fastapi.md; how each example maps to"
        " a route: docs/how-it-works.md.",
        "",
        "| the post says | section | where it runs | ratio | measured / ideal | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in claims.rows:
        ratio = f"{_number(row.measured)} / {_number(row.ideal)}"
        lines.append(
            f"| {row.quote} | {row.section} | {row.where} | {row.ratio} | {ratio} |"
            f" **{row.verdict}** |"
        )
    lines += ["", "## Why each verdict", ""]
    for row in claims.rows:
        lines.append(f"- **{row.key}** ({row.verdict}): {row.why}. Measured by `{row.command}`.")
    lines.append("")
    return "\n".join(lines)


def write_claims(claims: Claims, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    markdown, data = out / "claims.md", out / "claims.json"
    markdown.write_text(render(claims))
    write_json(data, asdict(claims))
    return [markdown, data]
