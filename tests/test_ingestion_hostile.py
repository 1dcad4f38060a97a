"""The upload against a broken network or a wrong host, each case a loopback server misbehaving for real
(tests/support/ingestion_server.py): answers that do not say "stored", redirects to another host, trickled bytes,
silence, resets, long Retry-After, and SIGTERM while any of that goes on.

What must hold: a file is booked as landed (``uploads.jsonl``) only on an answer that says so; nothing is
ever sent to a host but the configured one; every request and every file's retries end in bounded time;
SIGTERM stops within seconds. Seconds measured are printed (run with ``-s``), never asserted."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.support.blockrun import ei_env, sigterm_when
from tests.support.ingestion_server import BAD_ANSWERS, IngestionServer
from tests.test_ingestion import ARGS, KEY, assert_key_nowhere, manifest_lines, upload

TIGHT = ["--upload-timeout", "2", "--upload-retry-time", "4"]  # seconds: small limits for the tests
PATIENT = ["--upload-timeout", "60", "--upload-retry-time", "4"]  # only the retry time ends a try


def ledger(out: Path) -> list[dict]:
    path = out / "uploads.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())["upload"]


def _seconds(stdout: str) -> str:
    """The time the fatal error line gives (``... N s in all`` / ``after N s``)."""
    line = next(x for x in stdout.splitlines() if x.startswith("ERROR: cannot upload"))
    return line.split(": ", 2)[-1]


@pytest.mark.parametrize(
    ("kind", "after_store"), [(kind, False) for kind in BAD_ANSWERS] + [("truncated", True), ("html", True)]
)
def test_a_200_that_does_not_say_stored_is_sent_again(sample_dir: Path, tmp_path: Path, kind: str, after_store: bool):
    """The first two answers are 200s that say nothing usable (the file stored or not): each is resent; every
    output ends stored exactly once, booked once, and a file that had been stored comes back a duplicate."""
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.bad(kind, 2, after_store=after_store)
        result = upload(server, sample_dir, ["--upload-concurrency", "1"], tmp_path / "w", out)
        assert result.returncode == 0, result.output
        total = len(manifest_lines(out))
        stored = Counter(s.name for s in server.stored)
        assert len(stored) == total and set(stored.values()) == {1}
        up = report(out)
        assert up["failed"] == 0 and up["landed"] + up["duplicates"] == total
        assert up["duplicates"] == (1 if after_store else 0)  # stored on the 1st bad answer, refused on the 2nd
        booked = [line["output"] for line in ledger(out)]
        assert len(booked) == len(set(booked)) == total
        assert [s.fault for s in server.seen[:2]] == [kind, kind]


def test_answers_that_never_say_stored_fail_the_run_and_book_nothing(sample_dir: Path, tmp_path: Path):
    """Every answer a 200 HTML page: the first file to use its retry time stops the uploads (the service has
    confirmed nothing); every file is failed by name in report.json, nothing is booked, a rerun sends all.
    (--upload-timeout 60: only the retry time ends a try, however slowly a loaded machine answers.)"""
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.bad("html", 10_000)
        failed = upload(server, sample_dir, PATIENT, tmp_path / "w", out)
        assert failed.returncode == 1, failed.output
        total = len(manifest_lines(out))
        up = report(out)
        assert up["landed"] == 0 and up["failed"] == total and up["not_sent"] == 0 and not ledger(out)
        assert sorted(f["output"] for f in up["failures"]) == sorted(x["output"] for x in manifest_lines(out))[:100]
        assert "ERROR upload" in failed.stdout and "text/html answer" in failed.stdout
        assert up["gave_up"] and "no answer of this run said a file was stored or refused" in up["gave_up"]
        assert len(server.seen) > 1 and "Traceback" not in failed.output
        assert not list(out.rglob(".tmp*"))
        server.heal()
        rerun = upload(server, sample_dir, [], tmp_path / "w2", out)
        assert rerun.returncode == 0, rerun.output
        assert report(out)["landed"] == total == len(server.stored)


def test_a_service_that_never_confirms_costs_one_retry_time_not_one_per_file(sample_dir: Path, tmp_path: Path):
    """One file at a time (60 outputs): the first file's retry time (4 s) stops the uploads; without the
    breaker each file would spend its own (240 s, past the 120 s the helper allows). The others are failed by
    name with the cause and were never sent; the staged outputs and the manifest are complete."""
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.bad("unnamed", 10_000)
        result = upload(server, sample_dir, [*PATIENT, "--upload-concurrency", "1"], tmp_path / "w", out)
        assert result.returncode == 1, result.output
        lines = manifest_lines(out)
        up = report(out)
        assert up["failed"] == len(lines) == 60 and up["landed"] == 0 and not ledger(out)
        tried = [f for f in up["failures"] if f["error"].endswith("tries)")]
        assert len(tried) == 1 and "does not name the file" in tried[0]["error"]
        assert tried[0]["output"] in up["gave_up"] and "--upload-retry-time (4 s)" in up["gave_up"]
        assert all(f["error"] == up["gave_up"] for f in up["failures"] if f not in tried)
        assert all((out / x["output"]).is_file() for x in lines) and not list(out.rglob(".tmp*"))
        assert up["requests"] == len(server.seen)  # every request went to the one file that used its time
        assert "stopped uploading" in result.stdout and "Traceback" not in result.output


def test_the_retry_time_ending_during_a_try_is_an_unconfirmed_file(tmp_path: Path):
    """Answers take 1.5 s, each a 200 that does not say stored: the 4 s retry time ends while a try is under
    way. That file is unconfirmed like one whose retry time ends between tries (it was taken for an unreachable
    service: the run stopped with no report.json, the flake seen under load)."""
    from augment.demo import write_sample_set

    src = tmp_path / "in"
    write_sample_set(src, per_class=1)
    out = tmp_path / "o"
    with IngestionServer(KEY, latency=1.5) as server:
        server.bad("html", 10_000)
        args = ["--copies", "0", "--test-fraction", "0", *PATIENT]
        result = upload(server, src, args, tmp_path / "w", out)
        assert result.returncode == 1, result.output
        assert "cannot upload" not in result.stdout, result.stdout
        up = report(out)
        assert up["failed"] == 3 and up["error"] is None and up["gave_up"] and not ledger(out)


def test_a_service_that_confirms_some_files_and_fails_others_keeps_uploading(sample_dir: Path, tmp_path: Path):
    """Squares get a 200 that never says stored, circles a per-file error, triangles land: each file has its
    own outcome, the breaker never trips (the service answers for files), every triangle lands."""
    out = tmp_path / "o"
    with IngestionServer(KEY, vague="square", reject="circle") as server:
        result = upload(server, sample_dir, PATIENT, tmp_path / "w", out)
        assert result.returncode == 1, result.output
        names = [x["output"] for x in manifest_lines(out)]
        up = report(out)
        assert up["gave_up"] is None and "stopped uploading" not in result.stdout
        assert up["landed"] == len(server.stored) == sum("triangle" in n for n in names)
        assert up["failed"] == sum("triangle" not in n for n in names) and up["not_sent"] == 0
        errors = {f["output"]: f["error"] for f in up["failures"]}
        assert all("text/html answer" in e for n, e in errors.items() if "square" in n)
        assert all("invalid image" in e for n, e in errors.items() if "circle" in n)
        assert {x["output"] for x in ledger(out) if x["status"] == "landed"} == {n for n in names if "triangle" in n}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_and_the_key_goes_nowhere_else(sample_dir: Path, tmp_path: Path, status: int):
    """127.0.0.1 redirects to 127.0.0.2 (another host to the client): the second never sees a request, let alone
    the key; the run stops naming the status, nothing is booked."""
    out = tmp_path / "o"
    with IngestionServer(KEY) as first, IngestionServer(KEY, host="127.0.0.2") as second:
        first.redirect(second.url, 10_000, status)
        result = upload(first, sample_dir, [], tmp_path / "w", out)
        assert result.returncode == 1, result.output
        assert f"answered HTTP {status} (a redirect, not followed)" in result.stdout
        assert second.seen == [] and second.keys_seen == set() and not second.stored
        assert not ledger(out) and "upload: 0 landed" in result.stdout
        assert_key_nowhere(result, out)
        assert "Traceback" not in result.output


def test_a_trickling_server_cannot_hold_an_upload(sample_dir: Path, tmp_path: Path):
    """A byte every 0.5 s: no read timeout ever fires; the per-request limit does, then the retry time."""
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.trickle(10_000, 0.5)
        result = upload(server, sample_dir, TIGHT, tmp_path / "w", out)
        assert result.returncode == 1, result.output
        assert "no complete answer within --upload-timeout 2 s" in result.stdout, result.stdout
        total = len(manifest_lines(out))
        assert f"0 failed, 0 uploaded by an earlier run, {total} not sent" in result.stdout
        assert "upload: 0 landed" in result.stdout
        assert not ledger(out)
        print(f"\ntrickle: {_seconds(result.stdout)} (--upload-timeout 2 --upload-retry-time 4)")
        server.heal()
        rerun = upload(server, sample_dir, [], tmp_path / "w2", out)
        assert rerun.returncode == 0 and len(server.stored) == len(manifest_lines(out)), rerun.output


def test_a_server_that_never_answers_costs_the_retry_time(tmp_path: Path):
    """Three files, a server that reads each request and never answers: the run ends after about
    --upload-retry-time, not after 9 tries x 120 s."""
    from augment.demo import write_sample_set

    src = tmp_path / "in"
    write_sample_set(src, per_class=1)
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.hang(10_000)
        args = ["--copies", "0", "--test-fraction", "0", *TIGHT]
        result = upload(server, src, args, tmp_path / "w", out)
        assert result.returncode == 1, result.output
        assert "cannot upload to" in result.stdout and "Traceback" not in result.output
        assert "upload: 0 landed" in result.stdout and "3 not sent" in result.stdout and not ledger(out)
        assert f"; {len(server.seen)} requests" in result.stdout  # every try is counted, answered or not
        print(f"\nnever answers, 3 files: {_seconds(result.stdout)} (--upload-timeout 2 --upload-retry-time 4)")


def test_resets_are_retried_and_every_file_lands_once(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.reset(3)
        result = upload(server, sample_dir, ["--upload-concurrency", "2"], tmp_path / "w", out)
        assert result.returncode == 0, result.output
        assert Counter(s.fault for s in server.seen)["reset"] == 3
        assert len(server.stored) == len(manifest_lines(out)) == report(out)["landed"]


def test_a_retry_after_past_the_retry_time_is_not_waited_for(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.storm(429, 10_000, retry_after="100")  # capped at 120 s, still past a retry time of 4 s
        result = upload(server, sample_dir, [*TIGHT, "--upload-concurrency", "1"], tmp_path / "w", out)
        assert result.returncode == 1, result.output
        assert "HTTP 429" in result.stdout and "--upload-retry-time 4" in result.stdout, result.stdout
        assert not ledger(out) and len(server.seen) == 1  # 100 s past the budget: not waited for, not retried


@pytest.mark.parametrize("trouble", ["trickle", "storm", "hang"])
def test_sigterm_while_uploads_are_stuck_exits_143_promptly(sample_dir: Path, tmp_path: Path, trouble: str):
    """Every output rendered and booked, its upload stuck (trickled answers, a 503 storm with the default
    backoff, silence): SIGTERM ends the run with 143, the report counts every file, nothing is booked."""
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        {"trickle": lambda: server.trickle(10_000, 0.5), "storm": lambda: server.storm(503, 10_000),
         "hang": lambda: server.hang(10_000)}[trouble]()  # fmt: skip
        args = [*ARGS, "--in-directory", str(sample_dir), "--out-directory", str(out), "--dest", "ei"]
        args += ["--ingestion-url", server.url, "--upload-concurrency", "2"]
        env = ei_env({"EI_PROJECT_API_KEY": KEY})  # the default backoff: up to 30 s between tries
        stuck = lambda: len(server.seen) >= 2  # noqa: E731 - requests are stuck at the server
        stopped, seconds = sigterm_when(args, workdir=tmp_path, env=env, ready=stuck, guard=90)
        assert stopped.returncode == 143, stopped.output
        print(f"\nSIGTERM during stuck uploads ({trouble}): exited in {seconds:.1f} s")
        up = report(out)
        assert up["landed"] == 0 and up["not_sent"] == len(manifest_lines(out)) and not ledger(out)
        assert "interrupted (SIGTERM)" in stopped.stdout and "Traceback" not in stopped.output
        assert not list(out.rglob(".tmp*"))


def test_a_retry_after_that_is_not_a_time_falls_back_to_the_backoff(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.storm(429, 1, retry_after="soon")
        server.storm(503, 1, retry_after="-5")
        result = upload(server, sample_dir, ["--upload-concurrency", "1"], tmp_path / "w", out)
        assert result.returncode == 0, result.output
        assert len(server.stored) == len(manifest_lines(out)) == report(out)["landed"]


def test_once_the_run_must_stop_no_further_file_of_a_batch_is_sent(sample_dir: Path, tmp_path: Path):
    """A batch refused as a whole (400) is resent one file at a time; when the first of those runs out of
    time, the others are not sent (each would otherwise cost its own time budget)."""
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.storm(400, 1)
        server.trickle(10_000, 0.5)
        args = [*TIGHT, "--batch-size", "10", "--upload-concurrency", "1", "--upload-category", "training"]
        result = upload(server, sample_dir, args, tmp_path / "w", out)
        assert result.returncode == 1, result.output
        assert "no complete answer within --upload-timeout 2 s" in result.stdout
        assert [s.fault for s in server.seen][:2] == ["400", "trickle"]
        assert len(server.seen) <= 4, [s.fault for s in server.seen]  # the 400, then one file's tries only
        assert not ledger(out)


def test_time_limits_are_flags_with_checked_values():
    from augment.config.project import resolve

    env = {"EI_PROJECT_API_KEY": KEY}
    limits = resolve(True, None, None, env, timeout="5", retry_time="60.5")[1].limits()
    assert (limits.attempt, limits.idle, limits.budget) == (5.0, 5.0, 60.5)
    defaults = resolve(True, None, None, env)[1].limits()
    assert (defaults.attempt, defaults.idle, defaults.budget, defaults.connect) == (120.0, 60.0, 300.0, 5.0)
    for bad in ("nan", "inf", "0", "-1", "abc", "1e9"):
        with pytest.raises(ValueError, match="--upload-timeout"):
            resolve(True, None, None, env, timeout=bad)


def test_sigterm_as_the_breaker_trips_then_a_rerun_sends_every_file_once(sample_dir: Path, tmp_path: Path):
    """Every answer a vague 200: SIGTERM the moment the breaker trips. The run has little left to do, so the
    signal lands while it fails the rest, writes its books and report, or exits (-15: after its handlers were
    restored). report.json is written whenever it lands (it was not when the signal came after the uploads:
    1 run in ~7), every file counted failed or not sent, nothing booked; a rerun against a healed service
    stores each output exactly once."""
    out = tmp_path / "o"
    with IngestionServer(KEY) as server:
        server.bad("html", 10_000)
        args = [*ARGS, "--in-directory", str(sample_dir), "--out-directory", str(out), "--dest", "ei"]
        args += ["--ingestion-url", server.url, *PATIENT, "--upload-concurrency", "2"]
        env = ei_env({"EI_PROJECT_API_KEY": KEY})
        stopped, _ = sigterm_when(args, workdir=tmp_path, env=env, line=lambda x: "stopped uploading" in x)
        assert stopped.returncode in (143, -15), stopped.output
        assert "Traceback" not in stopped.output and not list(out.rglob(".tmp*"))
        total = len(manifest_lines(out))
        up = report(out)
        assert up["landed"] == 0 and up["failed"] + up["not_sent"] == total and not ledger(out)
        server.heal()
        rerun = upload(server, sample_dir, [], tmp_path / "w2", out)
        assert rerun.returncode == 0, rerun.output
        stored = Counter(s.name for s in server.stored)
        assert len(stored) == total and set(stored.values()) == {1}
        assert report(out)["landed"] == total and len(ledger(out)) == total
