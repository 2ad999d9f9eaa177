"""The uvicorn worker every service runs under gunicorn, minus one race at shutdown.

uvicorn's ``Server.shutdown`` stops listening and, in the same event-loop iteration, closes
every connection that has no parsed request yet. A connection accepted a moment earlier,
whose request bytes are not read yet, is closed unanswered: the client sees "Remote end
closed connection without response". gunicorn's ``max_requests`` recycles workers under
load, so each recycle rolls that dice (Kludex/uvicorn#3124 describes it and its fix; this
lab's recycle test lost 1 of 120 requests to it). Pausing between the two steps lets those
requests be read first: uvicorn then serves them, with keep-alive off, like any other
request in flight.
"""

import asyncio
import socket
import sys

import uvicorn
import uvicorn_worker
from gunicorn.arbiter import Arbiter

# Long enough for a just-accepted connection's request (already sent by the client) to be
# read and parsed; idle connections still close right after.
ACCEPTED_GRACE_S = 0.05


class GracefulServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        await asyncio.sleep(ACCEPTED_GRACE_S)
        await super().shutdown(sockets)


class UvicornWorker(uvicorn_worker.UvicornWorker):
    """Kludex/uvicorn-worker's worker, serving with GracefulServer."""

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = GracefulServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
