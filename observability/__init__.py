"""What every service of the lab shares to be observed: request ids, JSON logs, metrics."""
