"""The viewer's routes through FastAPI's TestClient, over run directories made by the real commands."""

import http.client
import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from fastapi.testclient import TestClient
from viewer_runs import SCRIPT_PROOF, make_runs

from qednano.viewer.app import create_app, has_dot_segment
from qednano.viewer.grid import Filters, build_rows, select
from qednano.viewer.mathtext import render_markdown
from qednano.viewer.rundirs import RunSet


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_runs(tmp_path_factory.mktemp("viewer"))


@pytest.fixture(scope="module")
def client(runs):
    return TestClient(create_app(RunSet(list(runs.values()))))


def grid_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="problem-row" data-problem="([^"]+)"', html)


# --- Markdown and math -------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "$a_1 + b_2 = c_3$",
    "\\( a_1 + b_2 = c_3 \\)",
    "$$a_1 + b_2 = c_3$$",
    "so \\[ a_1 + b_2 = c_3 \\] holds",
])
def test_math_keeps_underscores_and_backslashes_for_latex(text):
    html = render_markdown(text)
    assert html.count("<math") == 1 and "<em>" not in html  # _..._ was not read as emphasis
    assert html.count("<msub>") == 3


def test_markdown_escapes_html_and_shows_a_broken_formula_as_source():
    html = render_markdown(f"A *proof* {SCRIPT_PROOF} and $\\frac{{1}}{{$ and $\\text{{<img src=x onerror=alert(1)>}}$.")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<em>proof</em>" in html
    assert "<img" not in html
    assert html.count('class="math-error"') == 2 and "\\frac{1}{" in html


def test_markdown_images_and_script_links_are_not_made():
    html = render_markdown("![tracker](http://example.com/x.png) and [click](javascript:alert(1))")
    assert "<img" not in html and 'href="javascript' not in html


def test_display_math_in_brackets_stays_inside_its_paragraph():
    html = render_markdown("Hence \\[ x^2 \\geq 0 \\] as claimed.")
    assert html.startswith("<p>") and html.count("<p>") == 1 and 'display="block"' in html


# --- run pages ---------------------------------------------------------------------------------

def test_index_lists_every_run_with_its_kind(client):
    html = client.get("/").text
    for key, kind in [("rc-run", "samples"), ("train-run", "training"), ("decon-run", "matches")]:
        assert f'href="/run/{key}"' in html and kind in html


def test_run_grid_has_every_status_and_honest_means(client):
    html = client.get("/run/rc-run").text
    assert grid_rows(html) == ["alpha-1", "beta-2", "delta-4", "gamma-3"]
    cells = re.findall(r'<td class="cell ([a-z_]+)( truncated)?"', html)
    assert {status for status, _ in cells} == {"graded", "failed", "no_proof", "ungraded"}
    assert sum(1 for _, trunc in cells if trunc) == 2  # both GAMMA samples hit the token limit
    beta = html.split('data-problem="beta-2"')[1].split("</tr>")[0]
    assert "(1 of 2)" in beta and ">6<" in beta  # the failed sample is shown, not counted as zero
    delta = html.split('data-problem="delta-4"')[1].split("</tr>")[0]
    assert "(0 of 2)" in delta  # ungraded: no mean
    # overall mean: alpha 7, 7; beta 6; gamma 0, 0 (no proof counts zero) -> 20 / 5
    assert re.search(r'id="overall-mean">4<', html) and "over 5 of 8 samples counted" in html


@pytest.mark.parametrize("query, expected", [
    ("category=Algebra", ["alpha-1", "beta-2"]),
    ("level=hard", ["delta-4"]),
    ("source=Textbook", ["beta-2"]),
    ("status=failed", ["beta-2"]),
    ("status=ungraded", ["delta-4"]),
    ("truncated=yes", ["gamma-3"]),
    ("truncated=no", ["alpha-1", "beta-2", "delta-4"]),
    ("min_score=3&max_score=7", ["alpha-1", "beta-2"]),
    ("max_score=1", ["gamma-3"]),
    ("q=triangle", ["gamma-3"]),
    ("q=CYCLE", ["delta-4"]),
    ("q=nothing-like-this", []),
    ("sort=-mean", ["alpha-1", "beta-2", "gamma-3", "delta-4"]),
    ("sort=mean", ["gamma-3", "beta-2", "alpha-1", "delta-4"]),
    ("sort=-id", ["gamma-3", "delta-4", "beta-2", "alpha-1"]),
])
def test_filters_search_and_sorting_choose_the_rows(client, query, expected):
    assert grid_rows(client.get(f"/run/rc-run?{query}").text) == expected


def test_a_bad_filter_value_is_a_clear_400(client):
    response = client.get("/run/rc-run?min_score=lots")
    assert response.status_code == 400 and "number" in response.text


def test_filters_on_rows_built_without_stored_problems(runs):
    run = RunSet([runs["scaffold-run"]]).runs["scaffold-run"]
    rows = build_rows(run.samples(), {})
    assert [r.problem_id for r in select(rows, Filters(q="alpha"))] == ["alpha-1"]  # ids are searched too


# --- problem pages -----------------------------------------------------------------------------

def test_problem_page_shows_statement_scheme_grade_and_rc_turns(client):
    html = client.get("/run/rc-run/problem/alpha-1").text
    assert "Reference solution" in html and "Marking scheme" in html and "Setup" in html
    assert "<math" in html and 'class="math-error"' in html  # the slip in the proof shows its source
    assert "&lt;script&gt;window.__pwned" in html and "<script>" not in html
    assert html.count('class="sample ') == 2 and "7 / 7" in html
    assert 'id="next" href="/run/rc-run/problem/beta-2"' in html and 'id="previous"' not in html
    assert re.search(r"<td>Finish</td><td>5 / 5</td>", html)
    assert "summary handed on to turn 2" in html and "I showed that" in html
    assert '<details class="reasoning">' in html and "Try AM-GM" in html  # reasoning collapsed
    assert re.search(r"rc · 3 calls · \d+ tokens · \$0\.\d{4} \+ grading \$0\.000[1-9] · calls took [\d.]+ s", html)


def test_failed_and_truncated_samples_say_so(client):
    beta = client.get("/run/rc-run/problem/beta-2").text
    assert re.search(r"call failed: turn 1 reasoning .*server error after retries", beta)
    gamma = client.get("/run/rc-run/problem/gamma-3").text
    assert gamma.count('<span class="badge truncated">truncated</span>') >= 2 and "(no proof)" in gamma


def test_verify_refine_calls_in_order_with_verdicts(client):
    html = client.get("/run/scaffold-run/problem/alpha-1").text
    heads = re.findall(r'<div class="call-head">#(\d+) (\w+)', html)
    assert [int(n) for n, _ in heads] == list(range(1, len(heads) + 1))
    roles = [role for _, role in heads]
    assert roles[:2] == ["generate", "generate"] and roles.count("verify") == 6 and "refine" in roles
    assert html.count("verdict 0.5") == 4 and html.count("verdict 1<") == 2
    assert "statement not stored in this run (no problems.jsonl)" in html


def test_rsa_population_and_knockout_in_order(client):
    html = client.get("/run/scaffold-run/problem/beta-2").text
    titles = re.findall(r"<h5>(turn [^<]+)</h5>", html)
    assert titles[:2] == ["turn 0: 3 × generate", "turn 1: 3 × aggregate"]
    assert any("compare" in t for t in titles[2:]) and "winner A" in html
    assert "aggregation of a subset of the previous population" in html


def test_data_distill_runs_show_graded_proofs(client):
    assert "data-distill" in client.get("/").text
    html = client.get("/run/distill-run").text
    assert grid_rows(html) == ["alpha-1", "beta-2", "delta-4", "gamma-3"] and "data-distill" in html
    assert "Trivial, since" in client.get("/run/distill-run/problem/alpha-1").text


def test_side_by_side_shows_both_runs_on_one_problem(client):
    html = client.get("/compare", params={"a": "rc-run", "b": "direct-run", "problem": "alpha-1"}).text
    sides = html.split('class="side" data-run=')
    assert len(sides) == 3 and "Try AM-GM" in sides[1] and "Trivial, since" in sides[2]
    assert html.count('<details class="member">') == 4  # the direct run's panel: two graders per sample
    one_sided = client.get("/compare", params={"a": "scaffold-run", "b": "rc-run", "problem": "gamma-3"}).text
    assert "this run has no samples of gamma-3" in one_sided and "no proof" in one_sided
    listing = client.get("/compare", params={"a": "rc-run", "b": "direct-run"}).text
    assert grid_rows(listing) == ["alpha-1", "beta-2", "delta-4", "gamma-3"]
    # the grader scores by problem; gamma: rc wrote no proof (0), direct got 6; delta is ungraded in both
    assert re.findall(r'class="num difference">([^<]+)<', listing) == ["+0.00", "+0.00", "–", "+6.00"]


# --- training and data runs --------------------------------------------------------------------

def test_training_page_plots_rewards_and_shows_a_steps_completions(client):
    html = client.get("/run/train-run").text
    metrics = ["reward", "reward_std", "learning_rate", "loss", "completions: mean reward"]
    assert re.findall(r'data-metric="([^"]+)"', html) == metrics
    assert html.count("<circle") == 6 * 4 + 3  # 6 logged steps x 4 metrics, 3 steps with completions
    assert "train-rl" in html and '"recipe": "tiny"' in html and "<script>" not in html  # the manifest, escaped
    assert 'id="step-heading">Step 3<' in html and html.count('class="completion"') == 3
    step1 = client.get("/run/train-run?step=1").text
    assert "(step 1)" in step1 and "(step 3)" not in step1
    assert "advantage -0.5" in step1 and "<math" in step1 and "ungraded" in step1
    assert "(answer 0, length_penalty –)" in step1  # each reward function; an abstention is not a zero


def test_an_sft_run_without_completions_shows_its_loss(tmp_path):
    run = tmp_path / "sft"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"command": "train-sft", "status": "running"}))
    rows = [{"step": 1, "loss": 2.0, "epoch": 0.1}, {"step": 2, "loss": 1.5, "epoch": 0.2}, {"step": 3, "loss": float("nan")}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    html = TestClient(create_app(RunSet([run]))).get("/run/sft").text
    assert re.findall(r'data-metric="([^"]+)"', html) == ["loss"] and html.count("<circle") == 2  # NaN left out
    assert "Completions by step" not in html


def test_decontamination_matches_side_by_side(client):
    html = client.get("/run/decon-run").text
    assert 'id="match-count">2<' in html and html.index("PB-Basic-002") < html.index("PB-Basic-001")  # most similar first
    assert html.count('class="side"') == 4
    assert 'id="match-count">1<' in client.get("/run/decon-run?method=ngram").text


def test_a_run_with_nothing_to_show_lists_its_files(tmp_path):
    run = tmp_path / "exported"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"command": "data-export", "status": "finished"}))
    (run / "train.parquet").write_text("")
    html = TestClient(create_app(RunSet([run]))).get("/run/exported").text
    assert "data-export" in html and "<li>train.parquet</li>" in html


def test_other_host_names_are_refused(runs):
    guarded = TestClient(create_app(RunSet([runs["rc-run"]]), hosts=["127.0.0.1", "localhost"]))
    assert guarded.get("/", headers={"host": "evil.example"}).status_code == 400
    assert guarded.get("/", headers={"host": "localhost"}).status_code == 200


def test_a_bad_line_names_file_line_and_field(tmp_path):
    run = tmp_path / "broken"
    run.mkdir()
    (run / "matches.jsonl").write_text(json.dumps({"train_id": "a", "against_id": "b", "method": "exact"}) + "\n")
    response = TestClient(create_app(RunSet([run]))).get("/run/broken")
    assert response.status_code == 422 and "matches.jsonl:1" in response.text and "similarity" in response.text


# --- safety ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/run/%2e%2e/etc/passwd", "/run/rc-run/problem/..%2F..%2Fmanifest.json",
    "/static/..%2F..%2Fapp.py", "/static/%252e%252e/app.py", "/run/rc-run/problem/a/../../../etc",
])
def test_dot_dot_paths_are_refused(client, path):
    response = client.get(path)
    assert response.status_code in (400, 404) and "root:" not in response.text and "import" not in response.text


def test_dot_dot_detection():
    assert has_dot_segment(b"/run/%2E%2E/x") and has_dot_segment(b"/a/..") and has_dot_segment(b"/a/%252e%252e/b")
    assert not has_dot_segment(b"/run/a..b/problem/x..y")


def test_unknown_runs_and_problems_are_404(client):
    assert client.get("/run/nope").status_code == 404
    assert client.get("/run/rc-run/problem/nope").status_code == 404


def test_pages_forbid_scripts_and_other_origins(client):
    policy = client.get("/").headers["content-security-policy"]
    assert "script-src 'none'" in policy and "default-src 'none'" in policy
    html = client.get("/run/rc-run/problem/alpha-1").text
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from another host


def test_a_folder_of_runs_serves_each_run(runs):
    served = RunSet([runs["rc-run"].parent])
    assert {"rc-run", "train-run", "decon-run"} <= set(served.runs) and "models" not in served.runs
    assert served.runs["rc-run"].path == runs["rc-run"].resolve()


def test_only_directories_are_served(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        RunSet([tmp_path / "missing"])


def test_view_command_serves_on_a_printed_free_port(runs):
    process = subprocess.Popen(
        [sys.executable, "-c", "from qednano.cli import app; app()", "view", str(runs["rc-run"]), "--no-browser"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        for _ in range(50):
            try:
                page = urllib.request.urlopen(url + "run/rc-run", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert "alpha-1" in page
        # a raw request line, not normalised by any client, as a hand-made attack would send it
        host, port = re.search(r"//([\d.]+):(\d+)/", url).groups()
        for raw in ("/run/../../../etc/passwd", "/static/../app.py", "/run/rc-run/problem/../../../manifest.json"):
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            connection.request("GET", raw)
            response = connection.getresponse()
            assert response.status == 400 and b"refused" in response.read()
            connection.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_view_command_refuses_a_missing_run(tmp_path):
    from typer.testing import CliRunner

    from qednano.cli import app

    result = CliRunner().invoke(app, ["view", str(tmp_path / "nope"), "--no-browser"])
    assert result.exit_code == 2 and "not a directory" in result.output
