"""The image's contents: the Dockerfile copies the build context whole, so .dockerignore
decides, and pyproject's package list is the one place that names the runtime packages."""

import ast
import fnmatch
import subprocess
import tomllib

import pytest

from bench.harness.topology import ROOT

# What the image needs besides the packages: the lock it installs, and the gunicorn settings
# serving/serve.py hands every gunicorn it starts.
IMAGE_FILES = {"requirements.txt", "gunicorn.conf.py"}


def runtime_packages() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.removesuffix("*") for pattern in patterns}


def denied_at_top() -> list[str]:
    """.dockerignore's patterns for top-level entries (the ones without a slash)."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    # This file's reading of Docker's rules holds only without exceptions.
    assert not [p for p in patterns if p.startswith("!")]
    return [p for p in patterns if "/" not in p]


def tracked_top_level() -> set[str]:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0 or not found.stdout:
        pytest.skip("not a git checkout: no list of tracked files")
    return {path.split("/", 1)[0] for path in found.stdout.splitlines()}


def sent(name: str) -> bool:
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in denied_at_top())


def test_every_runtime_package_is_a_package_and_reaches_the_image() -> None:
    packages = runtime_packages()
    assert {"upstream", "gateway", "serving", "console"} <= packages
    for package in packages:
        assert (ROOT / package / "__init__.py").is_file(), package
        assert sent(package), f"{package} is a runtime package, yet .dockerignore denies it"
    assert all(sent(name) for name in IMAGE_FILES)


def test_the_context_holds_only_the_runtime_packages_and_the_files_the_image_needs() -> None:
    """A new top-level entry must be one or the other: in pyproject's package list, or
    denied in .dockerignore, or every image would carry it."""
    wanted = runtime_packages() | IMAGE_FILES
    stray = sorted(name for name in tracked_top_level() if sent(name) and name not in wanted)
    assert stray == [], f"add these to .dockerignore or to pyproject's packages: {stray}"
    # The build's own and the local ones too: the venv and the caches never reach the daemon.
    assert not any(sent(name) for name in (".venv", ".git", ".mypy_cache", ".env"))


def test_no_service_imports_the_benchmark_and_no_image_ships_it() -> None:
    """bench/ runs on the host: what a service shares with it lives in core/."""
    assert "bench" not in runtime_packages()
    assert not sent("bench")
    for package in runtime_packages():
        for module in (ROOT / package).rglob("*.py"):
            tree = ast.parse(module.read_text(), filename=str(module))
            imported = [
                name
                for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom)
                for name in (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
            ]
            assert not [name for name in imported if name.split(".")[0] == "bench"], module


def test_the_dockerfile_names_no_package() -> None:
    copies = [
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY")
    ]
    assert copies == ["COPY requirements.txt ./", "COPY . ./"]
