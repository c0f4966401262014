"""The viewer's web app: FastAPI routes over a fixed set of run directories, Jinja2 pages.

Safety: a URL names a run by key and a problem by id, both looked up in what was read from the
given folders; no URL becomes a file path (static files come from this package's own folder).
A request whose path holds a `..` segment is refused outright. Templates escape everything
except the HTML made by `mathtext.render_markdown`, which escapes raw HTML itself. The Content
Security Policy forbids every script and every request to another origin, so even a mistake in
escaping could not run a proof's `<script>` or fetch anything from the internet.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import ValidationError
from starlette.middleware.trustedhost import TrustedHostMiddleware

from qednano.viewer import grid, views
from qednano.viewer.mathtext import render_markdown
from qednano.viewer.plots import metric_series, svg_chart
from qednano.viewer.rundirs import RunDir, RunSet

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
    "script-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class NotFound(Exception):
    pass


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=HERE / "templates")
    found.env.filters["md"] = lambda text: Markup(render_markdown(text or ""))
    found.env.filters["num"] = lambda x, digits=2: "–" if x is None else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    found.env.filters["usd"] = lambda x: f"${x:.4f}"
    found.env.filters["prompt_text"] = views.prompt_text
    found.env.globals["urlencode"] = urlencode
    found.env.globals["STATUSES"] = grid.STATUSES
    return found


def has_dot_segment(raw_path: bytes) -> bool:
    """True for a path with a `..` segment, plain or percent-encoded (once or twice)."""
    text = raw_path.decode("latin-1")
    for _ in range(3):
        text = unquote(text)
    return any(part == ".." for part in text.replace("\\", "/").split("/"))


def create_app(runs: RunSet, hosts: list[str] | None = None) -> FastAPI:
    """The viewer of `runs`. `hosts`: the Host headers to answer (None: any), so that a web page
    that rebinds its own domain name to 127.0.0.1 still cannot read the runs."""
    app = FastAPI(title="qednano viewer", docs_url=None, redoc_url=None, openapi_url=None)
    pages = templates()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    if hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if has_dot_segment(request.scope.get("raw_path") or request.url.path.encode()):
            response = PlainTextResponse("refused: '..' is not allowed in viewer paths", status_code=400)
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        return pages.TemplateResponse(request, name, {"runs": runs.runs, **context}, status_code=status)

    def run_or_404(key: str) -> RunDir:
        run = runs.get(key)
        if run is None:
            raise NotFound(f"no run {key!r} is being served")
        return run

    @app.exception_handler(NotFound)
    async def not_found(request: Request, err: NotFound):
        return page(request, "error.html", 404, title="Not found", message=str(err))

    @app.exception_handler(ValueError)
    async def unreadable(request: Request, err: ValueError):
        # a bad line in a run file: say which file, line and field instead of a stack trace
        return page(request, "error.html", 422, title="Cannot read this run", message=str(err))

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        return page(request, "index.html")

    @app.get("/run/{key}", response_class=HTMLResponse)
    def run_page(request: Request, key: str):
        run = run_or_404(key)
        if run.kind == "samples":
            return samples_page(request, run)
        if run.kind == "training":
            return training_page(request, run)
        if run.kind == "matches":
            return matches_page(request, run)
        return page(request, "other.html", run=run, files=sorted(p.name for p in run.path.iterdir()))

    def samples_page(request: Request, run: RunDir) -> HTMLResponse:
        try:
            filters = grid.Filters.model_validate({k: v for k, v in request.query_params.items() if v != ""})
        except ValidationError as err:
            return page(request, "error.html", 400, title="Bad filter", message=str(err.errors()[0]["msg"]))
        rows = grid.build_rows(run.samples(), run.problems())
        shown = grid.select(rows, filters)
        mean, counted, total = grid.overall_mean(shown)
        width = max((len(r.cells) for r in rows), default=0)
        menus = {name: grid.choices(rows, name) for name in ("category", "level", "source")}
        return page(
            request, "run.html", run=run, rows=shown, all_rows=len(rows), filters=filters, menus=menus, width=width,
            mean=mean, counted=counted, total=total, counts=grid.status_counts(shown), sorts=grid.SORTS,
            query=dict(request.query_params),
        )

    def training_page(request: Request, run: RunDir) -> HTMLResponse:
        completions = run.completions()
        steps = views.training_steps(completions)
        chosen = request.query_params.get("step", "")
        step = int(chosen) if chosen.lstrip("-").isdigit() else (steps[-1].step if steps else None)
        series = metric_series(run.metrics()) + views.completion_reward_series(steps)
        charts = [Markup(svg_chart(s)) for s in series]
        shown = [c for c in completions if c.step == step]
        return page(request, "training.html", run=run, steps=steps, step=step, completions=shown, charts=charts)

    def matches_page(request: Request, run: RunDir) -> HTMLResponse:
        matches = run.matches()
        method = request.query_params.get("method", "")
        methods = sorted({m.method for m in matches})
        return page(request, "matches.html", run=run, matches=views.select_matches(matches, method), methods=methods, method=method)

    @app.get("/run/{key}/problem/{problem_id:path}", response_class=HTMLResponse)
    def problem(request: Request, key: str, problem_id: str):
        run = run_or_404(key)
        found = views.problem_page(run, problem_id)
        if found is None:
            raise NotFound(f"run {key!r} has no problem {problem_id!r}")
        others = [k for k, r in runs.runs.items() if k != key and r.kind == "samples"]
        return page(request, "problem.html", p=found, others=others)

    @app.get("/compare", response_class=HTMLResponse)
    def compare(request: Request, a: str, b: str, problem: str = ""):
        left, right = run_or_404(a), run_or_404(b)
        if not problem:
            return page(request, "compare_runs.html", left=left, right=right, problems=views.compared_problems(left, right))
        sides = [views.problem_page(left, problem), views.problem_page(right, problem)]
        if sides == [None, None]:
            raise NotFound(f"neither {a!r} nor {b!r} has problem {problem!r}")
        return page(request, "compare.html", left=left, right=right, problem_id=problem, sides=sides)

    return app
