"""The `qednano` command (see main.py); `qednano.cli:app` is its entry point."""

from qednano.cli.main import app

__all__ = ["app"]
