"""What a process's network namespace says of its TCP connections, from the kernel's own
counters and lists under /proc/PID/net: how many it has accepted, and how many are open."""

from pathlib import Path

PROC = Path("/proc")
# /proc/net/tcp's state column for ESTABLISHED, and the port every service listens on.
TCP_ESTABLISHED = "01"
SERVICE_PORT = 8000


def passive_opens(pid: int) -> int:
    """TCP connections accepted in `pid`'s network namespace since it started: the kernel's
    count (PassiveOpens in /proc/PID/net/snmp), 0 if it cannot be read."""
    try:
        lines = (PROC / str(pid) / "net" / "snmp").read_text().splitlines()
    except OSError:
        return 0
    tcp = [line.split() for line in lines if line.startswith("Tcp:")]
    if len(tcp) < 2 or "PassiveOpens" not in tcp[0]:
        return 0
    return int(tcp[1][tcp[0].index("PassiveOpens")])


def established(pid: int, port: int = SERVICE_PORT) -> int:
    """Connections to `port` established in `pid`'s network namespace now: the kernel's
    list (/proc/PID/net/tcp and tcp6), 0 if it cannot be read."""
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / str(pid) / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            count += fields[3] == TCP_ESTABLISHED and local_port == port
    return count
