"""The 422 that names the query parameter a request may not use, in FastAPI's own shape:
for a value no route takes, and for a lab lever while the levers are off."""

from fastapi.exceptions import RequestValidationError

from serving.levers import LEVERS_OFF


def invalid_query(name: str, message: str, value: object) -> RequestValidationError:
    """A 422 that names the query parameter, in FastAPI's own error shape."""
    error = {"type": "value_error", "loc": ("query", name), "msg": message, "input": value}
    return RequestValidationError([error])


def lever_refused(name: str, value: object) -> RequestValidationError:
    """The 422 for a lever's parameter, when the levers are off."""
    return invalid_query(name, LEVERS_OFF, value)
