"""`python -m qednano.cli ...` (what `torchrun -m qednano.cli` runs on every rank)."""

from qednano.cli import run

run()
