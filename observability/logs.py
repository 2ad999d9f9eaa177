"""JSON log lines for every server (gunicorn, uvicorn, granian), each with its request id.

gunicorn.conf.py hands ``log_config`` to gunicorn's ``logconfig_dict``, and the uvicorn
worker reuses gunicorn's handlers for its own ``uvicorn.access`` and ``uvicorn.error``
loggers. uvicorn and granian alone (serving/serve.py) take the same dictionary.
"""

import logging
from typing import Any

# uvicorn's access line: '%s - "%s %s HTTP/%s" %d', with these arguments.
_ACCESS_ARGS = ("client", "method", "path", "http_version", "status")


class AccessFields(logging.Filter):
    """uvicorn's access record carries its fields as format arguments: name them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            if len(record.args) == len(_ACCESS_ARGS):
                for name, value in zip(_ACCESS_ARGS, record.args, strict=True):
                    setattr(record, name, value)
        return True


# Each server's own loggers: gunicorn's, uvicorn's, granian's.
ERROR_LOGGERS = ("gunicorn.error", "uvicorn.error", "_granian")
ACCESS_LOGGERS = ("gunicorn.access", "uvicorn.access", "granian.access")


def log_config(access_log: bool) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for every server: one JSON object per line."""
    filters = ["request_id", "access_fields"]
    handler = {"class": "logging.StreamHandler", "formatter": "json", "filters": filters}
    access: dict[str, Any] = {"level": "INFO", "propagate": False, "handlers": []}
    if access_log:
        access["handlers"] = ["access"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            # Sets record.correlation_id from the request's context; "-" outside one.
            "request_id": {
                "()": "asgi_correlation_id.CorrelationIdFilter",
                "default_value": "-",
            },
            "access_fields": {"()": AccessFields},
        },
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {
                    "asctime": "time",
                    "levelname": "level",
                    "name": "logger",
                    "process": "pid",
                    "correlation_id": "request_id",
                },
            }
        },
        "handlers": {
            "access": {**handler, "stream": "ext://sys.stdout"},
            "error": {**handler, "stream": "ext://sys.stderr"},
        },
        # Libraries speak up only when something is wrong: httpx logs every request at INFO.
        "root": {"level": "WARNING", "handlers": ["error"]},
        "loggers": {
            **{
                name: {"level": "INFO", "propagate": False, "handlers": ["error"]}
                for name in ERROR_LOGGERS
            },
            **{name: access for name in ACCESS_LOGGERS},
        },
    }
