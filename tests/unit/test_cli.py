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
        (["claims", "--preset", "huge"], "--preset"),
        (["sweep", "--preset", "huge"], "--preset"),
        (["sweep", "--load", "1.2"], "--load"),
        (["sweep", "--gateway", "blocking"], "--gateway"),
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


def test_a_swarm_preset_must_be_a_swarm_one() -> None:
    result = CliRunner().invoke(app, ["compare", "--target", "swarm", "--preset", "overload"])
    assert result.exit_code == 2
    assert "quick, full" in result.output and "Traceback" not in result.output


def test_a_stack_that_is_not_there_is_an_error_without_a_traceback() -> None:
    args = ["compare", "--target", "swarm", "--stack", "no-such-stack-here"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_claims_without_a_stack_is_an_error_without_a_traceback() -> None:
    urls = ["--sync-url", "http://127.0.0.1:9", "--async-url", "http://127.0.0.1:9"]
    result = CliRunner().invoke(app, ["claims", *urls])
    assert result.exit_code == 1
    assert "is the stack up?" in result.output and "Traceback" not in result.output


def test_a_sweep_without_a_stack_is_an_error_without_a_traceback() -> None:
    args = ["sweep", "--sync-url", "http://127.0.0.1:9", "--gateway", "sync"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "is the stack up?" in result.output and "Traceback" not in result.output
