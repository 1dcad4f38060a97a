"""S3 source and sink, end to end against a real S3 server (SeaweedFS on 127.0.0.1, signatures checked).

The block runs as a subprocess (tests.support.blockrun.run_block) with only AWS_* variables pointing it at the server,
as a user's `docker run -e AWS_...` would. All S3 tests share one server and run on one xdist worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment.cli import parse
from augment.config import ConfigError, build_config
from augment.run.runner import run
from augment.sinks import SinkError
from augment.sinks.s3 import S3Sink, content_type
from augment.storage.s3_client import S3Client, S3Error
from augment.storage.s3_url import parse_s3_url, unsafe_key_reason
from tests.support.blockrun import ROOT, ei_env, run_block, terminate_when_under_way
from tests.support.s3server import SECRET_KEY, SeaweedServer, SlowS3

pytestmark = pytest.mark.xdist_group("s3")

DATA, OUT = "edge-data", "edge-out"
ARGS = ["--copies", "1", "--seed", "7", "--workers", "2"]
BIG = 1010  # > 1,000 keys: the listing must paginate


def png8(seed: int) -> bytes:
    """A tiny distinct 8x8 RGB PNG."""
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, "PNG")
    return buf.getvalue()


# Class sub-prefixes, flat <label>.<uid> names, a non-image, a hidden file and an empty folder marker.
MIXED = {
    **{f"capacitor/c{i:02}.png": png8(i) for i in range(4)},
    **{f"led/led-{i}.png": png8(100 + i) for i in range(3)},
    **{f"diode.{uid}.png": png8(200 + n) for n, uid in enumerate(("00bff939", "1a2b3c4d", "feedbeef"))},
    "notes.txt": b"not an image",
    ".hidden.png": png8(300),
}
MIXED_PREFIX = "org/team/raw/mixed/"  # a nested prefix
CLASSES = ("capacitor", "resistor", "led")
BIG_OBJECTS = {f"{CLASSES[i % 3]}/{CLASSES[i % 3]}-{i:04}.png": png8(1000 + i) for i in range(BIG)}


def mixed_bucket(s3: SlowS3, bucket: str) -> SlowS3:
    """``bucket`` made, with MIXED under ``raw/`` (put directly, not through the proxy); ``s3`` itself."""
    client = s3.direct.client()
    client.create_bucket(Bucket=bucket)
    put_all(client, bucket, {"raw/" + k: v for k, v in MIXED.items()})
    return s3


def put_all(client, bucket: str, objects: dict[str, bytes]) -> None:
    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1], ContentType=content_type(item[0]))

    with ThreadPoolExecutor(24) as pool:
        list(pool.map(put, objects.items()))


def bucket_objects(client, bucket: str, prefix: str) -> dict[str, dict]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            found[obj["Key"][len(prefix) :]] = obj
    return found


def bucket_bytes(client, bucket: str, prefix: str) -> dict[str, bytes]:
    names = list(bucket_objects(client, bucket, prefix))
    with ThreadPoolExecutor(24) as pool:
        bodies = pool.map(lambda n: client.get_object(Bucket=bucket, Key=prefix + n)["Body"].read(), names)
        return dict(zip(names, bodies, strict=True))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items() if k != "report.json"}


@pytest.fixture(scope="module")
def s3(s3server: SeaweedServer, tmp_path_factory: pytest.TempPathFactory):
    """Buckets seeded once: the mixed set under a nested prefix, BIG keys under big/, and an empty dest bucket.
    Also the same mixed set in a local folder standing in for EI's bucket mount /mnt/s3fs/<bucket>/<prefix>."""
    client = s3server.client()
    client.create_bucket(Bucket=DATA)
    client.create_bucket(Bucket=OUT)
    put_all(client, DATA, {MIXED_PREFIX + k: v for k, v in MIXED.items()})
    client.put_object(Bucket=DATA, Key=MIXED_PREFIX + "empty/", Body=b"")  # a console-made folder
    put_all(client, DATA, {"big/" + k: v for k, v in BIG_OBJECTS.items()})
    mount = tmp_path_factory.mktemp("mnt") / "s3fs" / DATA / MIXED_PREFIX
    for key, data in MIXED.items():
        (mount / key).parent.mkdir(parents=True, exist_ok=True)
        (mount / key).write_bytes(data)
    (mount / "empty").mkdir()
    return client, mount


def block(s3server: SeaweedServer, args: list[str], workdir: Path, **env: str):
    workdir.mkdir(parents=True, exist_ok=True)
    return run_block([*ARGS, *args], workdir=workdir, env=ei_env(s3server.env(**env)), timeout=120)


def report_of(files: dict[str, bytes]) -> dict:
    return json.loads(files["report.json"])


def test_s3_and_local_runs_are_byte_identical(s3server, s3, tmp_path: Path):
    """local (the mount) -> local, S3 -> S3 and S3 -> local: same names, same bytes, same manifest."""
    client, mount = s3
    source = f"s3://{DATA}/{MIXED_PREFIX}"
    ref = block(s3server, ["--in-directory", str(mount), "--out-directory", str(tmp_path / "ref")], tmp_path / "w1")
    assert ref.returncode == 0, ref.output
    s3s3 = block(s3server, ["--source", source, "--dest", f"s3://{OUT}/mixed/v1"], tmp_path / "w2")
    assert s3s3.returncode == 0, s3s3.output
    s3local = block(s3server, ["--source", source, "--out-directory", str(tmp_path / "dl")], tmp_path / "w3")
    assert s3local.returncode == 0, s3local.output

    expected = tree_bytes(tmp_path / "ref")
    assert "diode/diode.00bff939.aug00.png" in expected and "capacitor/capacitor.c00.orig.png" in expected
    assert len([k for k in expected if k.endswith(".png")]) == 10 * 2
    remote = bucket_bytes(client, OUT, "mixed/v1/")
    assert digests(remote) == digests(expected)  # includes manifest.jsonl
    assert digests(tree_bytes(tmp_path / "dl")) == digests(expected)

    for files in (remote, tree_bytes(tmp_path / "dl")):
        report = report_of(files)
        assert report["skipped_files"] == report_of(expected)["skipped_files"]
        assert report["skipped_files"] == [{"source": "notes.txt", "reason": "not an image file (by extension)"}]
        assert report["empty_folders"] == ["empty"]
        assert report["totals"]["written"] == 20
    head = client.head_object(Bucket=OUT, Key="mixed/v1/led/led.led-0.aug00.png")
    assert head["ContentType"] == "image/png"
    assert "s3://edge-data/org/team/raw/mixed/ -> 20 outputs in s3://edge-out/mixed/v1/" in s3s3.stdout


def test_more_than_1000_keys_then_rerun_skips_existing(s3server, s3, tmp_path: Path):
    """> 1,000 keys in the source and in the destination: both listings paginate."""
    client, _ = s3
    args = ["--source", f"s3://{DATA}/big/", "--dest", f"s3://{OUT}/big/", "--include-originals", "0"]
    first = block(s3server, args, tmp_path / "w1")
    assert first.returncode == 0, first.output
    objects = bucket_objects(client, OUT, "big/")
    assert len(objects) == BIG + 2  # outputs + manifest.jsonl + report.json
    report = json.loads(client.get_object(Bucket=OUT, Key="big/report.json")["Body"].read())
    assert report["totals"] == {"originals": BIG, "written": BIG, "existing": 0, "failed": 0, "dropped": 0}
    assert set(report["classes"]) == set(CLASSES)
    manifest = client.get_object(Bucket=OUT, Key="big/manifest.jsonl")["Body"].read().decode().splitlines()
    assert len(manifest) == 1 + BIG

    again = block(s3server, args, tmp_path / "w2")
    assert again.returncode == 0, again.output
    report = json.loads(client.get_object(Bucket=OUT, Key="big/report.json")["Body"].read())
    assert report["totals"] == {"originals": BIG, "written": 0, "existing": BIG, "failed": 0, "dropped": 0}
    after = bucket_objects(client, OUT, "big/")
    assert all(after[k]["LastModified"] == objects[k]["LastModified"] for k in objects if k.endswith(".png"))


def test_images_no_manifest_records_in_an_s3_dest_are_refused_not_mixed(s3server, s3, tmp_path: Path):
    """The foreign-image check goes through the sink: an S3 --dest prefix holding an image no manifest there
    records is refused as a local folder is (nothing written); a source prefix inside the dest is not one."""
    client, _ = s3
    source, dest = f"s3://{DATA}/{MIXED_PREFIX}", f"s3://{OUT}/stranger/"
    client.put_object(Bucket=OUT, Key="stranger/led/led.led-0.aug99.png", Body=png8(7))
    client.put_object(Bucket=OUT, Key="stranger/.hidden/x.png", Body=png8(8))  # hidden: not looked at
    refused = block(s3server, ["--source", source, "--dest", dest], tmp_path / "w1")
    assert refused.returncode == 1, refused.output
    assert f"ERROR: {dest} holds 1 image(s) that no manifest there records" in refused.stdout
    assert "led/led.led-0.aug99.png" in refused.stdout and "an empty --dest prefix" in refused.stdout
    assert "Traceback" not in refused.output
    assert sorted(bucket_objects(client, OUT, "stranger/")) == [".hidden/x.png", "led/led.led-0.aug99.png"]
    client.delete_object(Bucket=OUT, Key="stranger/led/led.led-0.aug99.png")
    put_all(client, OUT, {"stranger/raw/" + k: v for k, v in MIXED.items()})  # an input inside the output
    inside = block(s3server, ["--source", f"s3://{OUT}/stranger/raw/", "--dest", dest], tmp_path / "w2")
    assert inside.returncode == 0, inside.output


def test_empty_prefix_is_a_clear_error(s3server, s3, tmp_path: Path):
    result = block(s3server, ["--source", f"s3://{DATA}/nothing/here/", "--out-directory", "out"], tmp_path)
    assert result.returncode == 1, result.output
    assert f"ERROR: no images found in s3://{DATA}/nothing/here/" in result.stdout
    assert "Traceback" not in result.output


@pytest.mark.parametrize("side", ["source", "dest"])
def test_missing_bucket_is_a_clear_error(s3server, s3, tmp_path: Path, side: str):
    args = (
        ["--source", "s3://no-such-bucket/raw/", "--out-directory", "out"]
        if side == "source"
        else ["--source", f"s3://{DATA}/{MIXED_PREFIX}", "--dest", "s3://no-such-bucket/aug/"]
    )
    result = block(s3server, args, tmp_path)
    assert result.returncode == 1, result.output
    assert "no-such-bucket" in result.stdout and "NoSuchBucket" in result.stdout
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("env", "code"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-wrong-secret"}, "SignatureDoesNotMatch"),
        ({"AWS_ACCESS_KEY_ID": "NOTAREALKEYID0000000"}, "InvalidAccessKeyId"),
    ],
)
@pytest.mark.parametrize("side", ["source", "dest"])
def test_wrong_credentials_fail_clearly_without_leaking_secrets(s3server, s3, tmp_path, env, code, side):
    if side == "source":
        args = ["--source", f"s3://{DATA}/{MIXED_PREFIX}", "--out-directory", "out"]
    else:
        _, mount = s3
        args = ["--in-directory", str(mount), "--dest", f"s3://{OUT}/denied/"]
    result = block(s3server, args, tmp_path, **env)
    assert result.returncode == 1, result.output
    assert code in result.stdout
    assert f"s3://{DATA if side == 'source' else OUT}/" in result.stdout
    assert "Traceback" not in result.output
    for secret in (SECRET_KEY, env.get("AWS_SECRET_ACCESS_KEY", SECRET_KEY)):
        assert secret not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))


UNSAFE = [
    "../evil.png",
    "../../etc/evil.png",
    "/abs-evil.png",
    "capacitor/../../../escape-evil.png",
    "a//b-evil.png",
    "./dot-evil.png",
    "..\\..\\win-evil.png",
]


def test_unsafe_keys_are_skipped_and_never_escape(s3server, s3, tmp_path: Path, monkeypatch):
    """Keys with '..', empty or '.' segments, a leading '/' or backslashes are reported and not read.

    SeaweedFS (like AWS for some of them) refuses to store such keys, so they are injected into the client's
    listing of the real server; the rest of the run (reads, writes) goes to the real server and a local out-directory.
    """
    client, _ = s3
    prefix = "inj/"
    put_all(client, DATA, {prefix + "capacitor/ok.png": png8(7)})
    for key in UNSAFE:  # the real server refuses these keys, or stores them under a normalised, safe key
        with contextlib.suppress(client.exceptions.ClientError):
            client.put_object(Bucket=DATA, Key="inj-raw/" + key, Body=png8(8), ContentType="image/png")
    assert all(unsafe_key_reason(k) is None for k in bucket_objects(client, DATA, "inj-raw/"))

    real_pages, real_get = S3Client.pages, S3Client.get

    def pages(self, bucket: str, prefix: str, page_size: int = 1000):
        found = list(real_pages(self, bucket, prefix, page_size))
        now = datetime.now(timezone.utc)  # noqa: UP017
        found[0].extend({"Key": prefix + k, "Size": 70, "LastModified": now} for k in UNSAFE)
        return iter(found)

    def get(self, bucket: str, key: str):
        assert ".." not in key and "//" not in key, f"unsafe key read: {key}"
        return real_get(self, bucket, key)

    monkeypatch.setattr(S3Client, "pages", pages)
    monkeypatch.setattr(S3Client, "get", get)
    for name, value in s3server.env().items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "work" / "out"
    args, _ = parse(["--source", f"s3://{DATA}/{prefix}", "--out-directory", str(out), *ARGS[:4], "--workers", "1"])
    lines: list[str] = []
    assert run(build_config(args, {}), lines.append) == 0, lines

    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == [
        "work/out/capacitor/capacitor.ok.aug00.png",
        "work/out/capacitor/capacitor.ok.orig.png",
        "work/out/manifest.jsonl",
        "work/out/report.json",
    ]
    assert not list(tmp_path.parent.rglob("*-evil*")) and not list(tmp_path.parent.rglob("evil.png"))
    skipped = {s["source"]: s["reason"] for s in json.loads((out / "report.json").read_text())["skipped_files"]}
    assert set(skipped) == set(UNSAFE)
    assert all(r.startswith("unsafe key, not read:") for r in skipped.values())
    assert any("skipped ../evil.png: unsafe key" in line for line in lines)


def test_unsafe_names_and_urls_are_refused():
    assert unsafe_key_reason("capacitor/x.png") is None
    for key in [*UNSAFE, "", "a/./b.png", "a/\x00.png"]:
        assert unsafe_key_reason(key), key
    sink = S3Sink(parse_s3_url("s3://bucket-name/out/"))
    for name in ("../x.png", "/x.png", "a//x.png"):
        with pytest.raises(SinkError, match="refusing to write"):
            sink.write(name, b"x")  # refused before any request is made
    assert str(parse_s3_url("s3://bucket-name/a/b")) == "s3://bucket-name/a/b/"
    assert str(parse_s3_url("s3://bucket-name")) == "s3://bucket-name/"
    assert parse_s3_url("s3://bucket-name/raw/components/").root_name == "components"
    for bad in ("bucket/x", "s3://B/x", "s3://ab/x", "s3://bucket-name/a/../b", "s3://bucket-name//x", "http://x/y"):
        with pytest.raises(ValueError):
            parse_s3_url(bad)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "bucket/raw"], "--source: expected s3://"),
        (["--source", "s3://x/raw"], "--source: 'x' is not a valid bucket name"),
        (["--source", "s3://bucket-a/raw/", "--in-directory", "in"], "not both"),
        (["--in-directory", "in", "--dest", "s3://bucket-a/../x"], "--dest: prefix"),
        (["--source", "s3://bucket-a/raw", "--dest", "s3://bucket-a/raw/"], "is the --source prefix"),
        (["--source", "s3://bucket-a/raw/", "--s3-endpoint", "127.0.0.1:9000"], "--s3-endpoint"),
    ],
)
def test_config_validates_s3_urls(argv: list[str], message: str):
    args, _ = parse(argv)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_config(args, {})


def test_config_accepts_s3_urls():
    args, _ = parse(["--source", "s3://bucket-a/raw", "--dest", "s3://bucket-a/raw/aug", "--s3-endpoint", "http://h:1"])
    config = build_config(args, {})
    assert (config.source.url, config.sink.url, config.storage.s3_endpoint) == (
        "s3://bucket-a/raw/",
        "s3://bucket-a/raw/aug/",
        "http://h:1",
    )
    assert S3Sink(parse_s3_url(config.sink.url)).describe() == "s3://bucket-a/raw/aug/"
    assert content_type("a/b.JPG") == "image/jpeg" and content_type("manifest.jsonl") == "application/x-ndjson"


@pytest.mark.slow
def test_server_killed_mid_run_then_restarted(s3server: SeaweedServer, s3, tmp_path: Path):
    """The store dies mid-run: the run fails cleanly (or rides it out); a rerun finishes the job without
    rewriting any object already there, and every object is whole (its bytes match the manifest)."""
    client, _ = s3
    args = ["--source", f"s3://{DATA}/big/capacitor/", "--dest", f"s3://{OUT}/killed/"]
    count = sum(k.startswith("capacitor/") for k in BIG_OBJECTS)  # 337 images, 674 outputs
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(block, s3server, args, tmp_path / "w1", AWS_MAX_ATTEMPTS="2")
        deadline = time.monotonic() + 60
        while len(bucket_objects(client, OUT, "killed/")) < 150 and time.monotonic() < deadline:
            assert not running.done(), running.result().output
            time.sleep(0.05)
        assert not running.done(), "the run ended before the server could be killed"
        s3server.kill()
        time.sleep(1.0)
        s3server.start()
        first = running.result(timeout=120)
    assert first.returncode in (0, 1), first.output
    assert "Traceback" not in first.output
    if first.returncode == 1:
        assert f"ERROR: cannot write s3://{OUT}/killed/" in first.stdout or "ERROR: cannot" in first.stdout
    before = bucket_objects(client, OUT, "killed/")
    assert len(before) >= 150

    time.sleep(1.1)  # so a rewrite would show in LastModified (1 s resolution)
    # ListBuckets answers before the restarted volume server serves reads (InternalError for a while).
    deadline = time.monotonic() + 60
    while True:
        try:
            client.get_object(Bucket=DATA, Key="big/capacitor/capacitor-0000.png")["Body"].read()
            break
        except client.exceptions.ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
    second = block(s3server, args, tmp_path / "w2")
    assert second.returncode == 0, second.output
    after = bucket_objects(client, OUT, "killed/")
    files = bucket_bytes(client, OUT, "killed/")
    manifest = [json.loads(line) for line in files["manifest.jsonl"].decode().splitlines()[1:]]
    assert len(manifest) == 2 * count == len({m["output"] for m in manifest})
    assert set(after) == {m["output"] for m in manifest} | {"manifest.jsonl", "report.json"}
    for m in manifest:  # nothing partial
        assert hashlib.sha256(files[m["output"]]).hexdigest() == m["sha256"], m["output"]
    for key, obj in before.items():  # nothing written twice
        if key.endswith(".png"):
            assert (after[key]["LastModified"], after[key]["ETag"]) == (obj["LastModified"], obj["ETag"]), key
    assert not client.list_multipart_uploads(Bucket=OUT).get("Uploads")
    totals = json.loads(files["report.json"])["totals"]
    assert totals["written"] + totals["existing"] == 2 * count and totals["failed"] == 0


def test_sigterm_leaves_a_journal_the_rerun_resumes_and_compacts(s3server, s3, tmp_path):
    """The manifest on S3 during a run: a header object, then part objects as results are booked (S3 objects
    cannot be appended to). A SIGTERM leaves them as they are; the rerun resumes from them, writes the whole
    manifest once and deletes the parts, ending with the bytes of an uninterrupted run."""
    client, _ = s3
    args = [*ARGS, "--source", f"s3://{DATA}/big/", "--include-originals", "0", "--workers", "1"]
    env = ei_env(s3server.env())
    cmd = [sys.executable, "-u", str(ROOT / "transform.py"), *args, "--dest", f"s3://{OUT}/journal/"]
    stopped = terminate_when_under_way(cmd[3:], workdir=tmp_path, env=env)
    assert stopped.returncode == 143, stopped.output
    files = bucket_bytes(client, OUT, "journal/")
    parts = sorted(k for k in files if k.startswith("manifest.jsonl.part-"))
    assert parts, sorted(files)[:5]  # the booked lines went into part objects
    header = json.loads(files["manifest.jsonl"].decode().splitlines()[0])
    assert header["type"] == "run" and len(files["manifest.jsonl"].decode().splitlines()) == 1
    recorded = [json.loads(x)["output"] for p in parts for x in files[p].decode().splitlines()]
    images = sorted(k for k in files if k.endswith(".png"))
    assert sorted(recorded) == images and 0 < len(images) < BIG

    resumed = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout
    clean = subprocess.run(
        [*cmd[:-1], f"s3://{OUT}/journal-clean/"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert clean.returncode == 0, clean.stdout
    after, reference = bucket_bytes(client, OUT, "journal/"), bucket_bytes(client, OUT, "journal-clean/")
    assert not [k for k in after if ".part-" in k]  # compacted: the parts are gone
    assert after["manifest.jsonl"] == reference["manifest.jsonl"]
    assert {k: v for k, v in after.items() if k.endswith(".png")} == {
        k: v for k, v in reference.items() if k.endswith(".png")
    }
    totals = json.loads(after["report.json"])["totals"]
    assert totals["existing"] == len(images) and totals["written"] == BIG - len(images)


@pytest.mark.parametrize("endpoint", ["http://edge:sekrit-7f3a@127.0.0.1:9000", "edge:sekrit-7f3a@127.0.0.1:9000"])
def test_credentials_in_an_endpoint_url_are_refused_and_never_echoed(endpoint: str, tmp_path: Path, monkeypatch):
    """--s3-endpoint is a usage error (exit 2, one line); AWS_ENDPOINT_URL fails the first S3 call: neither
    prints the password."""
    result = run_block(["--source", "s3://bucket-a/raw/", "--s3-endpoint", endpoint], workdir=tmp_path, env=ei_env({}))
    assert result.returncode == 2, result.output
    assert "--s3-endpoint: credentials inside the URL" in result.output and "sekrit" not in result.output
    assert "Traceback" not in result.output
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    with pytest.raises(S3Error, match="credentials inside the URL") as error:
        S3Client().get("bucket-a", "raw/x.png")
    assert "sekrit" not in str(error.value)


def test_a_child_forked_after_s3_requests_gets_an_error_not_a_hang(s3server, s3, monkeypatch):
    """obstore's runtime does not survive a fork: S3 in such a child is refused in one line (it would hang)."""
    for name, value in s3server.env().items():
        monkeypatch.setenv(name, value)
    assert S3Client().get(DATA, MIXED_PREFIX + "capacitor/c00.png") == MIXED["capacitor/c00.png"]
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only for the expected error, killed by the alarm if it hangs
        signal.alarm(30)
        try:
            S3Client().get(DATA, MIXED_PREFIX + "capacitor/c01.png")
        except S3Error as e:
            os._exit(0 if "forked" in str(e) else 3)
        os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_odd_key_names_list_and_read_back(s3server, s3, monkeypatch):
    """Spaces, '+', '%', '&', '<', non-ASCII: listed (URL-encoded in the XML, decoded) and read back as named."""
    for name, value in s3server.env().items():
        monkeypatch.setenv(name, value)
    names = ["odd/a b.png", "odd/a+b.png", "odd/100%.png", "odd/caf\u00e9.png", "odd/a&b<c>'\".png", "odd/x=y?z#.png"]
    client = S3Client()
    for n, key in enumerate(names):
        client.put(OUT, key, png8(n), "image/png")
    listed = [obj["Key"] for page in client.pages(OUT, "odd/", page_size=2) for obj in page]  # 3 pages
    assert sorted(listed) == sorted(names)
    assert [client.get(OUT, key) for key in names] == [png8(n) for n in range(len(names))]
    assert client.delete(OUT, names) == [] and list(client.pages(OUT, "odd/")) == [[]]


def test_sink_delete_removes_the_object_and_its_listing_entry(s3server, s3, monkeypatch):
    for name, value in s3server.env().items():
        monkeypatch.setenv(name, value)
    client, _ = s3
    sink = S3Sink(parse_s3_url(f"s3://{OUT}/deleted/"))
    sink.write("c/x.png", png8(1))
    assert sink.exists("c/x.png")
    sink.delete("c/x.png")
    assert not sink.exists("c/x.png") and not bucket_objects(client, OUT, "deleted/")
