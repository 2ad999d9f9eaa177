"""bench/harness/sockets.py: the kernel's count of accepted connections and its list of
open ones, read for this test's own namespace."""

import os
import socket
from pathlib import Path

import pytest

from bench.harness.sockets import established, passive_opens

linux_only = pytest.mark.skipif(not Path("/proc/self/net/snmp").exists(), reason="needs /proc")
# A pid no process has: nothing to read.
GONE = 2**22 + 1


@linux_only
def test_passive_opens_counts_connections_this_namespace_accepted() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        before = passive_opens(os.getpid())
        for _ in range(5):
            with socket.create_connection(server.getsockname(), timeout=5):
                server.accept()[0].close()
        # Other processes on this host may accept connections too: at least ours.
        assert passive_opens(os.getpid()) - before >= 5
    assert passive_opens(GONE) == 0


@linux_only
def test_established_counts_the_open_connections_to_a_port() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        assert established(os.getpid(), port) == 0
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        accepted = [server.accept()[0] for _ in clients]
        # Each connection's server end: the client ends are to other ports.
        assert established(os.getpid(), port) == 3
        for sock in clients + accepted:
            sock.close()
    assert established(GONE, port) == 0
