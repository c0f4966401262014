"""Web viewer of run directories: `qednano view RUN...` (reads runs, never writes them)."""
