from pathlib import Path

import pytest

from serving.cores import cpu_limit_cores, whole_cores


def cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2, cpus: 1.5
        ({"cpu.max": "max 100000\n"}, None),  # v2, no limit
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup files at all
    ],
)
def test_the_cpu_limit_is_read_from_cgroup_v1_and_v2(
    tmp_path: Path, files: dict[str, str], cores: float | None
) -> None:
    assert cpu_limit_cores(cgroup(tmp_path, files)) == cores


def test_whole_cores_follow_the_containers_limit_not_the_hosts_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 32)
    assert whole_cores(cgroup(tmp_path / "one", {"cpu.max": "100000 100000"})) == 1
    assert whole_cores(cgroup(tmp_path / "two", {"cpu.max": "250000 100000"})) == 2
    assert whole_cores(cgroup(tmp_path / "half", {"cpu.max": "50000 100000"})) == 1
    assert whole_cores(cgroup(tmp_path / "none", {"cpu.max": "max 100000"})) == 32
