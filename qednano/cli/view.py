"""`qednano view RUN...`: browse run directories (samples, grades, traces, training, data) locally."""

from pathlib import Path
from typing import Annotated

import typer

from qednano.cli.common import console, user_errors


def view(
    runs: Annotated[list[Path], typer.Argument(help="Run directories to serve (eval, grade, train, data runs), or folders of runs such as runs/.")],
    host: Annotated[str, typer.Option(help="Address to listen on; the default serves this machine only.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: a free one, printed).")] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a web browser.")] = False,
) -> None:
    """Serve a web viewer of the given runs: proofs, grades, scaffold calls, training, data."""
    from qednano.viewer.rundirs import RunSet
    from qednano.viewer.serve import bind, serve, url_of

    with user_errors():
        run_set = RunSet(runs)
        sock = bind(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]listening on {host}: anyone who can reach this machine can read these runs[/]")
    console.print(f"viewer of {len(run_set.runs)} run(s) at [bold]{url_of(sock)}[/] (Ctrl+C stops it)", soft_wrap=True)
    try:
        serve(run_set, sock, open_browser=not no_browser)
    finally:
        sock.close()
