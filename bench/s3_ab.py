"""Two versions of the block (and of the latency proxy) on the same S3 -> S3 job, interleaved, direct and through
50 ms: how much of the 50 ms cost a change removes, on a machine too busy for back-to-back benches to compare.

    git archive <commit> | tar -x -C /tmp/before          # the tree to compare against
    git show <commit>:tests/support/latency_proxy.py > /tmp/old_proxy.py
    python bench/s3_ab.py --tree before=/tmp/before --tree now=. --proxy old=/tmp/old_proxy.py \\
        --variant before:old --variant now:new --variant now:old [--repeat 6]

Each round runs every ``--variant`` (tree:proxy; ``new`` is this checkout's proxy) S3 -> S3 direct, then through
its proxy (``--delay`` each way), on one SeaweedFS seeded once (as ``bench/s3_latency.py``). Printed per variant:
median walls, the median of each round's direct/50 ms ratio (pairs run seconds apart share the load), the
median 50 ms - direct in seconds, the proxy's CPU seconds (this process's, the proxies run in it) and the
block's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.s3 import BUCKET  # noqa: E402
from bench.s3_latency import DEFAULT_DATA, seed  # noqa: E402
from tests.support.latency_proxy import LatencyProxy  # noqa: E402
from tests.support.s3server import running_server  # noqa: E402


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _proxy_class(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("bench_old_proxy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module.LatencyProxy


def _pairs(text: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout (transform.py in it)")
    parser.add_argument("--proxy", action="append", default=[], help="NAME=PATH of another latency_proxy.py")
    parser.add_argument("--variant", action="append", required=True, help="TREE:PROXY")
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.025)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    opts = parser.parse_args()
    trees = {name: Path(path).resolve() for name, path in _pairs(opts.tree).items()}
    classes = {"new": LatencyProxy} | {name: _proxy_class(Path(p)) for name, p in _pairs(opts.proxy).items()}
    work = Path(tempfile.mkdtemp(prefix="bench-s3-ab-"))
    with running_server(work / "weed") as server:
        proxies = {name: cls(server.ports["s3.port"], opts.delay).start() for name, cls in classes.items()}
        try:
            client = server.client()
            client.create_bucket(Bucket=BUCKET)
            prefix = opts.data.name + "/"
            seed(client, opts.data, prefix)
            results = rounds(opts, trees, proxies, server, work, prefix)
        finally:
            for proxy in proxies.values():
                proxy.stop()
    print(f"\n{'variant':<16} {'direct':>8} {'50 ms':>8} {'ratio':>6} {'extra s':>8} {'proxy CPU':>9} {'block CPU':>9}")
    for variant in opts.variant:
        direct, far = results[(variant, "direct")], results[(variant, "far")]
        walls = statistics.median(d[0] for d in direct), statistics.median(f[0] for f in far)
        print(
            f"{variant:<16} {walls[0]:6.2f} s {walls[1]:6.2f} s"
            f" {statistics.median(d[0] / f[0] for d, f in zip(direct, far, strict=True)):5.2f}x"
            f" {statistics.median(f[0] - d[0] for d, f in zip(direct, far, strict=True)):6.2f} s"
            f" {statistics.median(f[1] for f in far):9.2f} {statistics.median(f[2] for f in far):9.2f}"
        )


def rounds(
    opts: argparse.Namespace, trees: dict[str, Path], proxies: dict[str, Any], server: Any, work: Path, prefix: str
) -> dict[tuple[str, str], list[tuple[float, float, float]]]:
    """(variant, "direct" | "far") -> per round (wall s, proxy CPU s, block CPU s)."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    runs = 0
    for n in range(opts.repeat):
        for variant in opts.variant:
            tree, proxy = variant.split(":")
            for kind, url in (("direct", server.endpoint), ("far", proxies[proxy].url)):
                runs += 1
                args = ["--workers", "2", "--seed", "42", "--source", f"s3://{BUCKET}/{prefix}"]
                args += ["--dest", f"s3://{BUCKET}/ab{runs}/"]
                own, children = _cpu()
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, str(trees[tree] / "transform.py"), *args],
                    env={**base, **server.env(AWS_ENDPOINT_URL=url)}, cwd=work, capture_output=True, text=True,
                )  # fmt: skip
                wall = time.perf_counter() - start
                if done.returncode != 0:
                    sys.exit(f"{variant} {kind} failed:\n{(done.stdout + done.stderr)[-3000:]}")
                own2, children2 = _cpu()
                results.setdefault((variant, kind), []).append((wall, own2 - own, children2 - children))
        walls = "  ".join(
            f"{v} {results[(v, 'far')][-1][0]:.2f}/{results[(v, 'direct')][-1][0]:.2f}" for v in opts.variant
        )
        print(f"round {n + 1}: 50 ms/direct s: {walls}  (load {os.getloadavg()[0]:.1f})", flush=True)
    return results


if __name__ == "__main__":
    main()
