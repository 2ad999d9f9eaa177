"""What the tests expect of every injected fault, shared by the unit and integration tests."""

from gateway.models import ErrorKind, UpstreamFault

# The error kind a gateway must report for a source that injected each fault.
ERROR_KIND_OF: dict[UpstreamFault, ErrorKind] = {
    "error": "status",
    "hang": "timeout",
    "slow-body": "timeout",
    "malformed-json": "invalid_body",
    "wrong-shape": "invalid_body",
    "reset": "connect",
}
