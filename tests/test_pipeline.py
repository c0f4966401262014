"""The evaluation pipeline, its sample store and run manifests."""

import asyncio
import json

import pytest
from conftest import direct

from qednano.grading.record import Grade
from qednano.llm.model import Model
from qednano.llm.scripted import ScriptedBackend
from qednano.llm.types import Completion, Prices
from qednano.problems.record import Problem
from qednano.records.pipeline import evaluate, run_models
from qednano.records.rundir import Run
from qednano.records.sample import SampleRecord
from qednano.records.store import SampleStore, StoreError
from qednano.secrets import redact

PROBLEMS = [Problem(id=f"p{i}", statement=f"Problem number {i}", category="Algebra") for i in range(3)]


class LengthGrader:
    """Scores a proof by its word count (capped at 7); counts its calls."""

    name = "length"

    def __init__(self, fail_on: set[str] = frozenset()):
        self.calls = 0
        self.fail_on = fail_on

    async def grade(self, problem, proof, sample_index=0):
        self.calls += 1
        if not proof.strip():
            return Grade(status="no_proof", score=0.0, grader=self.name)
        if problem.id in self.fail_on:
            return Grade(status="ungraded", grader=self.name, error="grader down")
        return Grade(status="graded", score=float(min(7, len(proof.split()))), grader=self.name)


def prover(fail_ids=()):
    def reply(messages, sampling):
        text = messages[-1]["content"]
        if any(f"number {i}" in text for i in fail_ids):
            return Completion.failure("prover", "http_500", "boom")
        return "one two three"

    return ScriptedBackend(reply, model="prover")


def test_jobs_run_on_uvloop_and_close_their_models_after():
    uvloop = pytest.importorskip("uvloop")
    model = Model("prover", prover())
    closed = []

    async def aclose():
        closed.append(asyncio.get_running_loop())

    model.aclose = aclose

    async def job():
        assert not closed  # not before the job is done
        return asyncio.get_running_loop(), await model.complete([{"role": "user", "content": "x"}])

    loop, done = run_models([model], job())
    assert isinstance(loop, uvloop.Loop) and done.content == "one two three"
    assert closed == [loop]  # closed on the loop its connections belong to


async def test_generate_then_grade_writes_every_sample(tmp_path):
    store = SampleStore(tmp_path / "samples.jsonl")
    grader = LengthGrader()
    records = await evaluate(PROBLEMS, direct(Model("prover", prover())), grader, samples=2, store=store)
    assert [r.key for r in records] == [(f"p{i}", s) for i in range(3) for s in range(2)]
    assert all(r.score == 3.0 for r in records)
    assert grader.calls == 6
    assert len(store.path.read_text().splitlines()) == 6  # compacted to one line per sample
    assert records[0].category == "Algebra"


async def test_resume_redoes_only_failed_generations_and_ungraded_samples(tmp_path):
    store = SampleStore(tmp_path / "samples.jsonl")
    first = await evaluate(
        PROBLEMS, direct(Model("prover", prover(fail_ids=[1]))), LengthGrader(fail_on={"p2"}), samples=2, store=store
    )
    statuses = {r.key: (r.attempt.status, r.grade and r.grade.status) for r in first}
    assert statuses[("p1", 0)] == ("failed", None)  # a failed call is a status, not a zero
    assert statuses[("p2", 0)] == ("ok", "ungraded")
    assert first[2].score is None and first[4].score is None

    backend = prover()
    grader = LengthGrader()
    second = await evaluate(PROBLEMS, direct(Model("prover", backend)), grader, samples=2, store=store)
    assert len(backend.calls) == 2  # the two failed samples of p1
    assert grader.calls == 4  # p1's two new attempts and p2's two ungraded ones
    assert all(r.score == 3.0 for r in second)

    third_backend = prover()
    before = store.path.stat().st_ino
    await evaluate(PROBLEMS, direct(Model("prover", third_backend)), LengthGrader(), samples=2, store=store)
    assert third_backend.calls == []
    assert store.path.stat().st_ino == before  # a finished run's file is read, not rewritten


def test_store_lines_hold_no_secret_and_read_back_as_written(tmp_path, monkeypatch):
    plain, odd = "sk-plain-secret-0123", 'sk-"quoted\\secret"-0123'  # JSON escapes the second one
    monkeypatch.setenv("MY_API_KEY", plain)
    monkeypatch.setenv("OTHER_TOKEN", odd)
    store = SampleStore(tmp_path / "samples.jsonl")
    from qednano.scaffolds.base import Attempt

    def record(index, proof):
        attempt = Attempt(problem_id="p0", sample_index=index, scaffold="direct", status="ok", proof=proof)
        return SampleRecord.start(PROBLEMS[0], attempt)

    clean = record(0, "Proof. ∑ of odd numbers, with \\frac{1}{2} and a \"quote\".")
    leaky = [record(1, f"my key is {plain}"), record(2, f"the other is {odd}!"), record(3, "Authorization: Bearer abc.def")]
    for one in (clean, *leaky):
        store.append(one)
    store.close()
    text = store.path.read_text(encoding="utf-8")
    assert plain not in text and json.dumps(odd)[1:-1] not in text and "abc.def" not in text
    back = store.read()
    assert back[("p0", 0)] == clean and json.loads(text.splitlines()[0]) == clean.model_dump(mode="json")
    assert [back[("p0", i)].attempt.proof for i in (1, 2, 3)] == [
        "my key is [redacted]", "the other is [redacted]!", "Authorization: Bearer [redacted]"]


def test_store_skips_a_torn_last_line_but_not_a_bad_middle_line(tmp_path):
    store = SampleStore(tmp_path / "samples.jsonl")
    attempt = {"problem_id": "p", "sample_index": 0, "scaffold": "direct", "status": "ok", "proof": "x"}
    good = json.dumps({"problem_id": "p", "sample_index": 0, "attempt": attempt})
    store.path.write_text(good + "\n" + good[:40])
    assert list(store.read()) == [("p", 0)]
    store.path.write_text(good[:40] + "\n" + good + "\n")
    with pytest.raises(StoreError, match="samples.jsonl:1: not valid JSON"):
        store.read()


def test_manifest_records_totals_and_never_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_API_KEY", "sk-very-secret-value")
    model = Model("m", ScriptedBackend(lambda m, s: "a b c"), prices=Prices(input=0, output=1_000_000))
    import asyncio

    asyncio.run(model.complete([{"role": "user", "content": "x"}]))
    config = {"model": "m", "note": "key is sk-very-secret-value"}
    with Run(tmp_path / "run", "eval", config, models=[model]) as run:
        assert json.loads(run.manifest_path.read_text())["status"] == "running"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["totals"]["models"]["m"]["completion_tokens"] == 3
    assert manifest["totals"]["cost_usd"] == pytest.approx(3.0)
    assert manifest["versions"]["pydantic"]
    assert "sk-very-secret-value" not in (tmp_path / "run" / "manifest.json").read_text()
    assert redact({"a": ["sk-very-secret-value!"]}) == {"a": ["[redacted]!"]}
    assert redact("Authorization: Bearer abc.def", secrets=[None]) == "Authorization: Bearer [redacted]"


def test_manifest_marks_a_crashed_run_failed(tmp_path):
    with pytest.raises(RuntimeError):
        with Run(tmp_path / "run", "eval", {}):
            raise RuntimeError("boom")
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "failed"


def test_record_score_rules():
    problem = PROBLEMS[0]
    from qednano.scaffolds.base import Attempt

    failed = SampleRecord.start(problem, Attempt(problem_id="p0", sample_index=0, scaffold="d", status="failed"))
    assert failed.score is None
    empty = SampleRecord.start(problem, Attempt(problem_id="p0", sample_index=0, scaffold="d", status="no_proof"))
    assert empty.score is None  # not graded yet
    empty = empty.model_copy(update={"grade": Grade(status="no_proof", score=0.0)})
    assert empty.score == 0.0


def test_manifest_package_versions_are_read_from_the_metadata_head(tmp_path, monkeypatch):
    from importlib import metadata

    from qednano.records.rundir import PACKAGES, installed_version

    for name in PACKAGES:
        try:
            expected = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        assert installed_version(name) == expected, name
    info = tmp_path / "fake_pkg-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-pkg\nVersion: 1.2.3\n\nVersion: 9.9.9 (a line of the description)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed_version("fake-pkg") == "1.2.3"
    with pytest.raises(metadata.PackageNotFoundError):
        installed_version("no-such-package-here")


def test_manifest_git_revision_names_the_commit_and_local_changes(tmp_path):
    import subprocess

    from qednano.records.rundir import git_revision

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    revision = git_revision.__wrapped__  # not cached: the checkout changes under it here
    assert revision(tmp_path) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    assert revision(tmp_path) is None  # no commit yet
    git("add", "a.py")
    git("commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert revision(tmp_path) == head
    (tmp_path / "a.py").write_text("x = 2\n")
    assert revision(tmp_path) == head + "+dirty"
    git("checkout", "-q", "a.py")
    (tmp_path / "new.py").write_text("")
    assert revision(tmp_path) == head + "+dirty"  # an untracked file is a local change too
