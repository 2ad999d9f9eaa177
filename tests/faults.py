"""What the tests expect of every injected fault, shared by the unit and integration tests."""

from core.news import FaultKind
from gateway.models import ErrorKind

# The error kind a gateway must report for a source that injected each fault.
ERROR_KIND_OF: dict[FaultKind, ErrorKind] = {
    "error": "status",
    "hang": "timeout",
    "slow-body": "timeout",
    "malformed-json": "invalid_body",
    "wrong-shape": "invalid_body",
    "reset": "connect",
}
