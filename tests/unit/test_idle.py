"""bench idle: the stack at rest, split between the services, the engine and the checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.experiments.idle import Healthcheck, Rest, described, engine_processes, process_times
from bench.harness import probe

# A child that burns this much CPU time (not wall time: a busy machine only slows it down).
BURN = "import time\nwhile time.process_time() < 0.3: pass"


def test_a_reaped_childs_cpu_is_counted_as_reaped_not_own() -> None:
    before = process_times(os.getpid())
    assert before is not None
    subprocess.run([sys.executable, "-c", BURN], check=True, timeout=60)
    after = process_times(os.getpid())
    assert after is not None
    assert after.reaped_s - before.reaped_s >= 0.28  # the child's 0.3 s, at 10 ms ticks
    assert after.own_s - before.own_s < 0.28  # this process only waited


def test_a_process_that_is_gone_has_no_times() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    assert process_times(child.pid) is None


def test_the_engine_is_found_by_its_processes_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for pid, comm in ((10, "dockerd"), (11, "containerd"), (12, "containerd-shim"), (13, "bash")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
    (tmp_path / "self").mkdir()
    (tmp_path / "14").mkdir()  # gone before its comm was read
    monkeypatch.setattr(probe, "PROC", tmp_path)
    assert sorted(engine_processes()) == [10, 11, 12]


def test_a_containers_service_and_check_come_from_its_config() -> None:
    labels = {"com.docker.compose.service": "upstream-wire"}
    check = {"Test": ["CMD", "bash", "serving/healthz.sh"], "Interval": 3_000_000_000}
    config = {"Labels": labels, "Healthcheck": check}
    assert described(config, "abc") == ("upstream-wire", Healthcheck("upstream-wire", 3.0))


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (None, None),
        ({"Test": ["NONE"]}, None),
        ({"Test": ["CMD", "true"]}, Healthcheck("0123456789ab", 30.0)),  # Docker's default
    ],
)
def test_no_check_or_the_default_interval(
    check: dict[str, object] | None, expected: Healthcheck | None
) -> None:
    assert described({"Labels": None, "Healthcheck": check}, "0123456789abcdef") == (
        "0123456789ab",
        expected,
    )


def test_the_split_adds_up_and_prices_each_check() -> None:
    checks = tuple(Healthcheck(name, 3.0) for name in "abcdef")
    rest = Rest(60.0, 0.14, 0.02, 0.045, 0.072, {"a": 0.02}, checks)
    assert rest.other_cores == pytest.approx(0.003)
    assert rest.checks_per_s == pytest.approx(2.0)
    assert rest.ms_per_check == pytest.approx((0.045 + 0.072) / 2 * 1000)
    recorded = rest.record()
    assert recorded["other_cores"] == 0.003
    assert recorded["ms_per_check"] == 58.5
    assert Rest(60.0, 0.02, 0.02, 0.0, 0.0, {}, ()).ms_per_check is None
    # A check every hour: in a minute the engine's own idle would pass for one check's cost.
    hourly = (Healthcheck("a", 3600.0),)
    assert Rest(60.0, 0.03, 0.02, 0.003, 0.0, {}, hourly).ms_per_check is None
