"""The lab's levers switch (``LAB_LEVERS``), read by every service, and the 422 that names
the query parameter a request may not use."""

from fastapi.exceptions import RequestValidationError
from pydantic import AliasChoices

# The one environment variable for every service; the field name works in code and tests.
LAB_LEVERS = AliasChoices("LAB_LEVERS", "lab_levers")
LEVERS_OFF = "the lab's levers are off (LAB_LEVERS=off)"


def invalid_query(name: str, message: str, value: object) -> RequestValidationError:
    """A 422 that names the query parameter, in FastAPI's own error shape."""
    error = {"type": "value_error", "loc": ("query", name), "msg": message, "input": value}
    return RequestValidationError([error])


def lever_refused(name: str, value: object) -> RequestValidationError:
    """The 422 for a lever's parameter, when the levers are off."""
    return invalid_query(name, LEVERS_OFF, value)
