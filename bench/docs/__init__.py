"""The measured blocks of README.md and docs/, rewritten from the results files."""
