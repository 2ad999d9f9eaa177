"""The experiments: each runs its load on a stack and returns what it measured."""
