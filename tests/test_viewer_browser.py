"""The viewer in a real headless Chromium (Debian's, driven by Playwright), on a real server.

Skipped, with the reason, when /usr/bin/chromium or Playwright is missing, except where
QEDNANO_BROWSER_TESTS=required (CI's `.ci/run` installs Chromium and sets it): there a missing
browser fails the tests instead. Screenshots go to tests/artifacts/ (ignored by git) so a person
can look at what the test saw.
"""

import importlib.util
import os
import threading
from pathlib import Path

import pytest
import uvicorn
from viewer_runs import make_runs

from qednano.viewer.app import create_app
from qednano.viewer.rundirs import RunSet
from qednano.viewer.serve import bind, url_of

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.browser


def missing() -> str | None:
    if not CHROMIUM.exists():
        return "needs Debian's chromium at /usr/bin/chromium: apt-get install -y chromium chromium-driver"
    if importlib.util.find_spec("playwright") is None:
        return "needs the playwright package: pip install -e '.[test]'"
    return None


@pytest.fixture(scope="module", autouse=True)
def chromium_present():
    reason = missing()
    if reason and os.environ.get("QEDNANO_BROWSER_TESTS") == "required":
        pytest.fail(f"QEDNANO_BROWSER_TESTS=required but the browser tests cannot run: {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def base_url(chromium_present, tmp_path_factory):
    runs = make_runs(tmp_path_factory.mktemp("viewer-browser"))
    sock = bind("127.0.0.1", None)
    server = uvicorn.Server(uvicorn.Config(create_app(RunSet(list(runs.values()))), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    yield url_of(sock).rstrip("/")
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser(base_url):
    # after base_url: the runs are made with asyncio.run, which cannot run inside Playwright's loop
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.requests = []
    opened.dialogs = []
    opened.on("request", lambda request: opened.requests.append(request.url))
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    yield opened
    outside = [url for url in opened.requests if not url.startswith(base_url) and not url.startswith("data:")]
    assert outside == [], f"the page fetched from elsewhere: {outside}"
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"viewer-{name}.png"), full_page=True)


def rows(page) -> list[str]:
    return page.locator("tr.problem-row").evaluate_all("rows => rows.map(r => r.dataset.problem)")


def test_run_page_filters_search_and_sort_change_the_grid(page, base_url):
    page.goto(f"{base_url}/run/rc-run")
    assert rows(page) == ["alpha-1", "beta-2", "delta-4", "gamma-3"]
    statuses = page.locator("td.cell").evaluate_all("cells => cells.map(c => c.dataset.status)")
    assert set(statuses) == {"graded", "failed", "no_proof", "ungraded"}
    shot(page, "run")

    page.select_option("select[name=category]", "Algebra")
    page.click("#apply")
    page.wait_for_load_state()
    assert rows(page) == ["alpha-1", "beta-2"]

    page.select_option("select[name=category]", "")
    page.fill("input[name=q]", "triangle")
    page.click("#apply")
    page.wait_for_load_state()
    assert rows(page) == ["gamma-3"] and page.inner_text("#shown-count") == "1"

    page.fill("input[name=q]", "")
    page.select_option("select[name=truncated]", "no")
    page.select_option("select[name=status]", "graded")
    page.click("#apply")
    page.wait_for_load_state()
    assert rows(page) == ["alpha-1", "beta-2"]

    page.goto(f"{base_url}/run/rc-run")
    page.click("th >> text=mean")
    page.wait_for_load_state()
    assert rows(page) == ["gamma-3", "beta-2", "alpha-1", "delta-4"]  # ascending; nothing counted goes last
    page.click("th >> text=mean")
    page.wait_for_load_state()
    assert rows(page)[:3] == ["alpha-1", "beta-2", "gamma-3"]


def test_problem_page_renders_formulas_and_never_runs_a_proofs_script(page, base_url):
    page.goto(f"{base_url}/run/rc-run")
    page.click("tr[data-problem=alpha-1] td.pid a")
    page.wait_for_load_state()
    assert page.url.endswith("/run/rc-run/problem/alpha-1")
    # native MathML: every formula is laid out as math, with a size, and none holds an error node
    formulas = page.locator("math").evaluate_all(
        "ms => ms.map(m => [getComputedStyle(m).display, m.getBoundingClientRect().height, m.querySelectorAll('merror').length])"
    )
    visible = [f for f in formulas if f[1] > 0]
    assert len(visible) >= 10 and all(display in ("math", "block math", "inline math") for display, _, _ in formulas)
    assert all(errors == 0 for _, _, errors in formulas)
    # the one broken formula in the proof is shown as its source, not as an error page
    sources = page.locator("code.math-error").evaluate_all("codes => codes.map(c => c.textContent)")
    assert len(sources) >= 2 and set(sources) == {"\\(\\frac{1}{\\)"}
    # the proof's <script> is text on the page and never ran
    assert "<script>window.__pwned = 1;" in page.inner_text("body")
    assert page.evaluate("typeof window.__pwned") == "undefined" and page.title() != "pwned" and page.dialogs == []
    # reasoning starts collapsed and opens on click; the RC summary handed on is shown
    reasoning = page.locator("details.reasoning").first
    assert not reasoning.evaluate("d => d.open")
    reasoning.locator("summary").click()
    assert reasoning.evaluate("d => d.open") and "Try AM-GM" in reasoning.inner_text()
    page.locator("details.calls > summary").first.click()
    assert "summary handed on to turn 2" in page.locator("details.calls").first.inner_text()
    shot(page, "problem")


def test_two_runs_side_by_side(page, base_url):
    page.goto(f"{base_url}/run/rc-run/problem/alpha-1")
    page.select_option("form.compare-form select[name=b]", "direct-run")
    page.click("form.compare-form button")
    page.wait_for_load_state()
    sides = page.locator("div.side")
    assert sides.count() == 2
    left, right = sides.nth(0).bounding_box(), sides.nth(1).bounding_box()
    assert right["x"] >= left["x"] + left["width"] - 1 and abs(right["y"] - left["y"]) < 2  # next to each other
    assert "is only text" in sides.nth(0).inner_text() and "Trivial, since" in sides.nth(1).inner_text()
    shot(page, "compare")


def test_training_and_data_runs(page, base_url):
    page.goto(f"{base_url}/run/train-run")
    assert page.locator("svg.chart").count() == 5 and page.locator("svg.chart polyline").first.bounding_box()["width"] > 100
    assert page.inner_text("#step-heading") == "Step 3"
    page.click("table.steps >> text=1")
    page.wait_for_load_state()
    assert page.inner_text("#step-heading") == "Step 1" and "(step 1)" in page.text_content("body")
    assert "(step 3)" not in page.text_content("body")
    shot(page, "training")
    page.goto(f"{base_url}/run/decon-run")
    assert page.locator("section.match").count() == 2 and page.locator("section.match math").count() >= 4
    page.select_option("select[name=method]", "ngram")
    page.click("form.filters button")
    page.wait_for_load_state()
    assert page.inner_text("#match-count") == "1"
    shot(page, "matches")


@pytest.mark.parametrize("path", ["/run/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fapp.py", "/run/rc-run/problem/%2E%2E%2Fmanifest.json"])
def test_dot_dot_paths_are_refused_in_the_browser(page, base_url, path):
    # Chromium resolves some encoded dot segments itself before asking (then the path is simply
    # not one the viewer serves); whatever reaches the server with `..` in it is refused
    response = page.goto(base_url + path)
    assert response.status in (400, 404) and "root:" not in page.content() and "import" not in page.content()
    assert response.status == 400 or ".." not in response.request.url
