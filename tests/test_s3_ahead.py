"""augment.run.ahead and ``S3Client.list_ahead``: an s3:// source's and destination's first pages are listed while
the block's render modules load, and used only by a listing of that very prefix, store and AWS settings.
Requests are counted in the latency proxy's log; nothing here is timed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from augment.run import ahead
from augment.storage.s3_client import S3Client, S3Error, forget_ahead
from tests.support.blockrun import ei_env
from tests.support.fault_proxy import FaultProxy
from tests.support.latency_proxy import LatencyProxy
from tests.support.s3server import SlowS3
from tests.test_s3 import MIXED, mixed_bucket

pytestmark = pytest.mark.xdist_group("s3")

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "edge-list-ahead"


@pytest.fixture(scope="module")
def seeded(slow_s3: SlowS3) -> SlowS3:
    return mixed_bucket(slow_s3, BUCKET)


@pytest.fixture
def aws(seeded: SlowS3, monkeypatch: pytest.MonkeyPatch) -> SlowS3:
    """This process's AWS settings: the proxied store's; nothing listed ahead before or after."""
    for name, value in seeded.env().items():
        monkeypatch.setenv(name, value)
    forget_ahead()
    yield seeded
    forget_ahead()


def _listings(s3: SlowS3, since: int) -> list[str]:
    return [e.line.split(" ")[1] for e in s3.proxy.exchanges[since:] if "list-type=2" in e.line]


def _when_listed(s3: SlowS3, since: int, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(_listings(s3, since)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_listings(s3, since)) >= count


def _keys(pages) -> list[str]:
    return [obj["Key"] for page in pages for obj in page]


def test_a_listing_takes_the_page_listed_ahead_of_its_prefix_once(aws: SlowS3):
    """Pages of 3 keys: the first comes from ``list_ahead``, the others are asked for after it; a second
    listing of the prefix asks the store from its first page."""
    first = len(aws.proxy.exchanges)
    S3Client().list_ahead(BUCKET, "raw/", 3)
    _when_listed(aws, first, 1)
    keys = _keys(S3Client().pages(BUCKET, "raw/", 3))
    assert keys == sorted("raw/" + k for k in MIXED)
    assert len(_listings(aws, first)) == 4  # 12 keys: 4 pages, the first listed ahead
    assert "continuation-token" not in _listings(aws, first)[0]
    assert _keys(S3Client().pages(BUCKET, "raw/", 3)) == keys
    assert len(_listings(aws, first)) == 8


@pytest.mark.parametrize(
    "other",
    [
        {"prefix": "raw/led/"},
        {"page_size": 4},
        {"endpoint": "ENDPOINT"},  # the same store, named by --s3-endpoint: another client
        {"env": ("AWS_REGION", "eu-west-1")},  # other AWS settings (credentials, region): another client
    ],
    ids=["prefix", "page-size", "endpoint", "aws-settings"],
)
def test_a_listing_of_another_prefix_or_client_asks_the_store(aws: SlowS3, monkeypatch: pytest.MonkeyPatch, other):
    first = len(aws.proxy.exchanges)
    S3Client().list_ahead(BUCKET, "raw/", 3)
    _when_listed(aws, first, 1)
    if "env" in other:
        monkeypatch.setenv(*other["env"])
    client = S3Client(aws.endpoint if other.get("endpoint") else None)
    prefix, size = other.get("prefix", "raw/"), other.get("page_size", 3)
    keys = _keys(client.pages(BUCKET, prefix, size))
    assert keys == sorted("raw/" + k for k in MIXED if ("raw/" + k).startswith(prefix))
    assert len(_listings(aws, first)) == 1 + -(-len(keys) // size)  # each of its pages asked for


def test_a_forgotten_page_is_listed_again(aws: SlowS3):
    """After planning (``ahead.forget``) a listing must see the store as it is now: what was listed ahead and
    not used is dropped."""
    first = len(aws.proxy.exchanges)
    S3Client().list_ahead(BUCKET, "raw/led/")
    _when_listed(aws, first, 1)
    aws.direct.client().put_object(Bucket=BUCKET, Key="raw/led/led-new.png", Body=MIXED["led/led-0.png"])
    try:
        ahead.forget()
        keys = _keys(S3Client().pages(BUCKET, "raw/led/"))
        assert "raw/led/led-new.png" in keys and len(_listings(aws, first)) == 2
    finally:
        aws.direct.client().delete_object(Bucket=BUCKET, Key="raw/led/led-new.png")


@pytest.mark.parametrize("attempts", [1, 2])
def test_a_failed_listing_ahead_is_the_first_of_the_runs_tries_and_it_says_why(aws: SlowS3, attempts: int):
    """A bucket that is not there: the listing ahead (one try) fails quietly; the run's own listing makes the
    tries left (none of 1) and fails with its message."""
    first = len(aws.proxy.exchanges)
    S3Client().list_ahead("edge-no-such-bucket", "raw/")
    _when_listed(aws, first, 1)
    with pytest.raises(S3Error, match=r"cannot list s3://edge-no-such-bucket/raw/: NoSuchBucket: the bucket does not"):
        list(S3Client(attempts=attempts).pages("edge-no-such-bucket", "raw/"))
    assert len(_listings(aws, first)) == attempts


@pytest.mark.parametrize(
    ("argv", "prefixes"),
    [
        (["--source", "s3://edge-list-ahead/raw", "--dest=s3://edge-list-ahead/out/"], ["raw/", "out/"]),
        (["--in-directory", "/data", "--dest", "s3://edge-list-ahead/a/", "--dest", "s3://edge-list-ahead/b"], ["b/"]),
        (["--source", "s3://edge-list-ahead/raw/", "--help"], []),  # argparse prints the help: no run
        (["--dest", "ei", "--source", "/data"], []),
        (["--source", "s3://Not_A_Bucket/raw/"], []),  # the run says why
        (["--sou", "s3://edge-list-ahead/raw/"], []),  # abbreviations are argparse's: no guess
        (["--s3-end", "http://127.0.0.1:9", "--source", "s3://edge-list-ahead/raw/"], []),  # not from AWS
        (["--source", "s3://edge-list-ahead/raw/", "--s3-endpoint=http://127.0.0.1:9", "--s3=x"], []),
        (["--source", "s3://edge-list-ahead/raw/", "--vers"], []),  # argparse prints the version: no run
        (["--he", "--dest=s3://edge-list-ahead/out/"], []),
        (["--source", "s3://edge-list-ahead/raw/", "--s3-endpoint"], []),  # argparse: expected one argument
        (["--dest", "s3://edge-list-ahead/out/", "--s3-endpoint", "--copies", "1"], []),
        (["--", "--source", "s3://edge-list-ahead/raw/"], []),
    ],
)
def test_the_flags_read_ahead(aws: SlowS3, monkeypatch: pytest.MonkeyPatch, argv: list[str], prefixes: list[str]):
    started: list[tuple[str, str]] = []
    monkeypatch.setattr(S3Client, "list_ahead", lambda self, bucket, prefix: started.append((bucket, prefix)))
    ahead.start(argv)
    assert started == [(BUCKET, p) for p in prefixes]


_GATED = """
import importlib.machinery, os, runpy, sys, time
gate, sys.argv = sys.argv[1], sys.argv[2:]  # then: transform.py and its flags


class WaitForGate:  # numpy (and with it every render module) runs only once the test opens the gate
    def find_spec(self, name, path=None, target=None):
        if name != "numpy":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        real = spec.loader

        class Gated:  # waits in exec_module, under numpy's own lock (find_spec runs under the global import lock)
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                while not os.path.exists(gate):
                    time.sleep(0.01)
                real.exec_module(module)

        spec.loader = Gated()
        return spec


sys.meta_path.insert(0, WaitForGate())
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_block_lists_its_source_and_destination_while_its_render_modules_load(seeded: SlowS3, tmp_path: Path):
    """transform.py with numpy's import held back: the source's and destination's listings reach the store
    meanwhile; once numpy loads, the run goes on with them (no prefix listed twice: 3 listings in all, the
    third the manifests' just before the header) and writes every output."""
    gate = tmp_path / "gate"
    work = tmp_path / "work"
    work.mkdir()
    dest = f"s3://{BUCKET}/gated/"
    first = len(seeded.proxy.exchanges)
    command = [sys.executable, "-c", _GATED, str(gate), str(ROOT / "transform.py"), "--copies", "1", "--seed", "1"]
    block = subprocess.Popen(
        [*command, "--source", f"s3://{BUCKET}/raw/", "--dest", dest],
        cwd=work,
        env=ei_env({**seeded.env(), "PYTHONPATH": str(ROOT)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _when_listed(seeded, first, 2)
        assert not gate.exists() and block.poll() is None
        listed = sorted(_listings(seeded, first))
        assert [p.split("prefix=")[1].split("&")[0] for p in listed] == ["gated%2F", "raw%2F"]
    finally:
        gate.touch()
        output, _ = block.communicate(timeout=120)
    assert block.returncode == 0, output
    listings = _listings(seeded, first)
    assert len(listings) == 3 and "prefix=gated%2Fmanifest" in listings[-1], listings
    written = seeded.direct.client().list_objects_v2(Bucket=BUCKET, Prefix="gated/")["KeyCount"]
    assert written == 20 + 2  # 10 images, a copy and the original each; the manifest and the report


def _run_through(proxy: FaultProxy | LatencyProxy, s3: SlowS3, tmp_path: Path, *extra: str, **env: str):
    """The block on the source s3://BUCKET/raw/ through ``proxy`` (running), into a folder: (exit code, output)."""
    args = ["--source", f"s3://{BUCKET}/raw/", "--copies", "1", "--out-directory", str(tmp_path / "out"), *extra]
    done = subprocess.run(
        [sys.executable, str(ROOT / "transform.py"), *args, "--workers", "1"],
        cwd=tmp_path, env=ei_env(s3.direct.env(**{"AWS_ENDPOINT_URL": proxy.url, **env})),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(("attempts", "plan", "code"), [("1", ["503"], 1), ("2", ["503"] * 2, 1), ("2", ["reset"], 0)])
def test_the_listing_ahead_is_the_first_of_the_runs_tries(seeded: SlowS3, tmp_path: Path, attempts, plan, code):
    """AWS_MAX_ATTEMPTS tries in all, the listing ahead's included: a store that fails them all fails the run
    with the message it had without the listing ahead; a try left lists the page."""
    with FaultProxy(seeded.direct.ports["s3.port"], plan) as proxy:
        returncode, output = _run_through(proxy, seeded, tmp_path, AWS_MAX_ATTEMPTS=attempts)
    assert returncode == code, output
    assert proxy.faults == plan and bytes(proxy.sent).count(b"list-type=2") == int(attempts)
    assert "Traceback" not in output
    if code:
        assert f"ERROR: cannot list s3://{BUCKET}/raw/: SlowDown: " in output, output


@pytest.mark.parametrize("attempts", ["1", "2"])
def test_a_stalled_listing_ahead_costs_the_run_no_time(seeded: SlowS3, tmp_path: Path, attempts: str):
    """A store that stalls (30 s each way), EDGE_AUGMENT_S3_TIMEOUT=1: the listing ahead is cut at the run's
    time limit and is its first try; the run asks AWS_MAX_ATTEMPTS times in all, then says what it said
    without it (counted, not timed)."""
    with LatencyProxy(seeded.direct.ports["s3.port"], 30.0) as proxy:
        returncode, output = _run_through(
            proxy, seeded, tmp_path, AWS_MAX_ATTEMPTS=attempts, EDGE_AUGMENT_S3_TIMEOUT="1"
        )
    assert returncode == 1, output
    said = f"ERROR: cannot list s3://{BUCKET}/raw/: cannot reach the S3 endpoint {proxy.url} after {attempts} attempts"
    assert said in output and "Traceback" not in output, output
    assert len([e for e in proxy.exchanges if "list-type=2" in e.line]) == int(attempts)


@pytest.mark.parametrize("where", ["--s3-endpoint", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_an_endpoint_with_credentials_in_it_is_asked_nothing_ahead(seeded: SlowS3, tmp_path: Path, where: str):
    """http://user:secret@host: the run refuses it (exit 2) as it did; nothing reaches that host, ahead or
    not, and the secret is in no output."""
    with FaultProxy(seeded.direct.ports["s3.port"], []) as proxy:
        url = proxy.url.replace("://", "://edge:hunter2-secret@")
        flags = ["--s3-endpoint", url] if where == "--s3-endpoint" else []
        returncode, output = _run_through(
            proxy, seeded, tmp_path, *flags, "--dest", f"s3://{BUCKET}/out/", **{where: url}
        )
        time.sleep(0.5)  # a listing ahead would have connected by now
    assert returncode == 2, output
    assert "credentials inside the URL" in output and "hunter2" not in output
    assert proxy.sent == b"" and proxy.connections == 0


def test_a_run_that_ends_before_it_plans_leaves_no_page_listed_ahead(aws: SlowS3, tmp_path: Path):
    """``transform.main`` in a process that goes on (a library caller, a notebook): a run refused before it
    plans (``--copies x``) leaves nothing listed ahead; a later listing of its prefix sees the store as it is."""
    import transform

    first = len(aws.proxy.exchanges)
    argv = ["--source", f"s3://{BUCKET}/raw/led/", "--copies", "x", "--out-directory", str(tmp_path / "out")]
    assert transform.main(argv) == 2
    deadline = time.monotonic() + 30
    while not any(e.end > e.start for e in aws.proxy.exchanges[first:]) and time.monotonic() < deadline:
        time.sleep(0.01)  # the listing ahead answered: the store listed it before the object below
    aws.direct.client().put_object(Bucket=BUCKET, Key="raw/led/led-later.png", Body=MIXED["led/led-0.png"])
    try:
        assert "raw/led/led-later.png" in _keys(S3Client().pages(BUCKET, "raw/led/"))
    finally:
        aws.direct.client().delete_object(Bucket=BUCKET, Key="raw/led/led-later.png")


def test_a_process_that_cannot_start_a_thread_lists_nothing_ahead(aws: SlowS3, monkeypatch: pytest.MonkeyPatch):
    """A thread limit (ulimit -u, a container's pids limit) makes ``Thread.start`` raise RuntimeError: the block
    starts without listing ahead (its own listing then says what it can), never with a traceback."""

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    first = len(aws.proxy.exchanges)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    ahead.start(["--source", f"s3://{BUCKET}/raw/", "--dest", f"s3://{BUCKET}/out/"])
    monkeypatch.undo()
    for name, value in aws.env().items():
        monkeypatch.setenv(name, value)
    assert _listings(aws, first) == []
    assert _keys(S3Client().pages(BUCKET, "raw/led/")) == sorted("raw/" + k for k in MIXED if k.startswith("led/"))
