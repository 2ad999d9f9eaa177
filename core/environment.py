"""Environment variables that one process sets and another reads, named once.

This module imports nothing: gunicorn's master reads it before prometheus_client, which
picks its multiprocess mode from the variable at import time, may be imported at all.
"""

# The directory where each worker keeps its Prometheus metrics files (gunicorn.conf.py
# makes it, the workers write it, /metrics sums it).
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
