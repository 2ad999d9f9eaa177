"""A real PostgreSQL for the unit tests: Debian's server (scripts/install.sh installs it),
made by initdb in a temporary directory, started by pg_ctl on a loopback port, and seeded
by the stack's own db/archive.sql. No mock of any driver."""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUPERUSER = "postgres"
ARCHIVE_PASSWORD = "unit-archive-reader"
# Fewer rows than the stack's 5000: enough for the index to be the plan, quick to seed.
ROWS = 2000


def server_bin() -> Path | None:
    """The directory of the newest installed server's initdb and pg_ctl, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _major(path: str) -> int:
    return int(Path(path).parts[-3])


def as_server_user() -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as Debian's postgres."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@dataclass(frozen=True)
class Postgres:
    port: int
    socket_dir: Path
    data: Path
    bin: Path

    @property
    def archive_url(self) -> str:
        return f"postgresql://archive_reader@127.0.0.1:{self.port}/news"

    def superuser_conninfo(self, dbname: str = "news") -> str:
        return f"host={self.socket_dir} port={self.port} dbname={dbname} user={SUPERUSER}"

    def psql(self, sql: str, *variables: str, dbname: str = "news") -> str:
        """`sql` run by psql as the superuser, in `dbname`; what it printed, unaligned."""
        command = [str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        for variable in variables:
            command += ["-v", variable]
        command += ["-d", self.superuser_conninfo(dbname), "-f", "-"]
        return subprocess.run(
            [*as_server_user(), *command],
            input=sql,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    def processes(self) -> list[int]:
        """The postmaster and every process it forked: its backends among them."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [
            int(pid)
            for pid in os.listdir("/proc")
            if pid.isdigit() and _parent(int(pid)) == postmaster
        ]
        return [postmaster, *children]

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Every server process stopped, as `docker pause` freezes a container: the kernel
        still accepts and acknowledges, and nothing answers."""
        pids = self.processes()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A seeded server for the length of the block, then stopped and deleted."""
    bin_dir = server_bin()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server is installed: run make install")
    work = Path(tempfile.mkdtemp(prefix="fanout-pg-"))
    data, sockets = work / "data", work / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        server = pwd.getpwnam("postgres")
        for path in (work, sockets):
            os.chown(path, server.pw_uid, server.pw_gid)
    pg = Postgres(free_loopback_port(), sockets, data, bin_dir)
    user = as_server_user()

    def run(*command: str) -> None:
        subprocess.run([*user, *command], check=True, capture_output=True, timeout=120)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -p {pg.port} -c unix_socket_directories={sockets}"
        log = str(work / "server.log")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
        run(
            str(bin_dir / "createdb"),
            "-h",
            str(sockets),
            "-p",
            str(pg.port),
            "-U",
            SUPERUSER,
            "news",
        )
        seed = (ROOT / "db" / "archive.sql").read_text()
        pg.psql(seed, f"archive_password={ARCHIVE_PASSWORD}", f"rows={ROWS}")
        yield pg
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(work, ignore_errors=True)
