"""The failures a run tolerates by default, in a module of its own (no pydantic) so that the
command line can show it in `--help` without importing the records (see records/failures.py)."""

DEFAULT_MAX_FAILURES = 0.1  # a tenth of the samples
