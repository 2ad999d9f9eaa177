"""The lab's levers switch (``LAB_LEVERS``), read by every service: off, no request may
choose a delay, a fault or a client, and the schemas do not offer them."""

from pydantic import AliasChoices

# The one environment variable for every service; the field name works in code and tests.
LAB_LEVERS = AliasChoices("LAB_LEVERS", "lab_levers")
LEVERS_OFF = "the lab's levers are off (LAB_LEVERS=off)"
