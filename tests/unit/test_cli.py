"""The benchmark's command line: bad input is a usage error that names the option."""

import pytest
from typer.testing import CliRunner

from bench.cli import app


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["run", "--url", "http://127.0.0.1:9/news", "-c", "0"], "--concurrency"),
        (["compare", "--preset", "huge"], "--preset"),
        (["pool-cost", "-c", "0"], "--concurrency"),
    ],
)
def test_bad_input_is_a_usage_error_without_a_traceback(args: list[str], names: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert names in result.output
    assert "Traceback" not in result.output


def test_compare_lists_the_presets_it_knows() -> None:
    result = CliRunner().invoke(app, ["compare", "--preset", "huge"])
    assert "quick" in result.output and "full" in result.output
