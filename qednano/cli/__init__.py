"""The `qednano` command (see main.py). `run` is its entry point: the console script and
`python -m qednano.cli` (what `torchrun -m qednano.cli` runs on every rank) call it."""

import gc
import os
import platform

from qednano.cli.main import app

__all__ = ["app", "run"]


def run() -> None:
    """Run the command line as a process of its own."""
    if platform.python_implementation() == "CPython":
        # With the default thresholds the cycle collector ran hundreds of times over the objects
        # a run keeps (modules, pydantic models, requests in flight): about an eighth of the CPU
        # of an eval at instant answers, and of its resume. Run it less often, as mypy does;
        # memory that reference counting frees is freed as before.
        gc.set_threshold(200_000, 30, 30)
    # pydantic looks for plugins (observability hooks) by reading the entry points of every
    # installed distribution before it builds the first model: 30-50 ms of each start with
    # torch and transformers installed. qednano uses none; setting the variable yourself
    # (to "" to load them all) wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app()
    finally:
        # The process ends here. The interpreter's teardown runs the cycle collector over every
        # object left, which took 70-110 ms after a resume (a fifth of its wall time); frozen
        # objects are skipped. What reference counting frees is still freed, and our files are
        # flushed as they are written.
        gc.freeze()
