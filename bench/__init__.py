"""Load generator and report for fanout-lab: ``python -m bench --help``."""
