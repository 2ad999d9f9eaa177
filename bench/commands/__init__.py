"""The bench's commands, by what they run on: the compose stack, the cluster, or any URL.

bench/cli.py names each one."""
