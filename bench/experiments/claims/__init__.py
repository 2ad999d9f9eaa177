"""``python -m bench claims``: every claim of the blog post, measured on the running compose
stack, each as a ratio against its own ideal from the same run, with a verdict.

The ideals come from this run's calibration: the sources' delays as the gateway sees them,
one sleep alone, one CPU job's cost at rest (core/theory.py draws the lines). It needs
one worker per gateway (the stack's default), and it restarts a gateway twice, for the
sync client and for gunicorn's timeout, putting each back as it found it.
"""
