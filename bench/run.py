"""Benchmarks of the block, as ratios measured side by side in one run (`make bench`).

    python bench/run.py [--copies 18] [--data ../shared/data/electronic-components-png] [--skip-container]

Needs scikit-image for the notebook baseline: `.venv/bin/pip install -r bench/requirements.txt` (a bench
tool only, never a runtime dependency of the block). Every contender runs as its own Python process, so
each pays interpreter start and imports; wall and CPU time (user + system of the process and its workers)
are both reported, since machines are shared: outputs per CPU-second is the fairer comparison.

(a) the block vs. the workshop notebook's pipeline, reimplemented with scikit-image exactly as the notebook
    calls it (flip x3 twice, rotate 45/90/135, 2 zoom crops at 1.3x, 3 translations, gaussian/poisson/s&p
    noise: 18 files per original, PIL PNG at its default level 6), same number of outputs;
(b) the block vs. the I/O floor: decode each original once, encode it unchanged once per output (same
    format and level), write the files; plus a "re-encode floor" over the block's own outputs (decode and
    encode each output again), which separates what augmentation costs from what encoding its content costs;
(c) --workers 2 vs --workers 1;
(d) peak RSS of the whole process tree for a 1x and a 20x dataset (replicated images, symlinks);
(e) container start -> first output (podman, image localhost/edge-augment:test, if present), venv start ->
    first output, and the import time of the entrypoint;
plus PNG compression level / JPEG quality: speed and size, on the 96x96 set and on 640x480 images.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procfs import time_first_output, watch_memory  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "electronic-components-png"
IMAGE = "localhost/edge-augment:test"
ENCODINGS = [  # (key, label, extra block arguments): speed and size of the output encodings, 2 workers
    ("pngz", "--png-strategy default (zlib's)", ["--png-strategy", "default"]),
    ("png1", "--png-compression 1", ["--png-compression", "1"]),
    ("png9", "--png-compression 9", ["--png-compression", "9"]),
    ("jpg90", "--image-format jpeg (quality 90)", ["--image-format", "jpeg"]),
    ("jpg75", "--image-format jpeg --jpeg-quality 75", ["--image-format", "jpeg", "--jpeg-quality", "75"]),
]
NOTEBOOK_PER_ORIGINAL = 18  # original + flips x3 + flips x3 again + 3 rotations + 2 zooms + 3 shifts + 3 noises


# ---------------------------------------------------------------------------------------------------------
# Contenders that run in a child process of this script (`bench/run.py --child <name> ...`)


def png_options(level: str) -> dict[str, int]:
    """``"6"``: zlib's default strategy (what PIL and the notebook use); ``"6rle"``: Z_RLE, the block's default."""
    options = {"compress_level": int(level.removesuffix("rle"))}
    if level.endswith("rle"):
        options["compress_type"] = 3
    return options


def child_floor(files: list[Path], out: Path, per_original: int, level: str) -> int:
    """I/O floor: decode each original once, encode it unchanged ``per_original`` times, write the files."""
    from PIL import Image

    n = 0
    for path in files:
        image = Image.open(path)
        image.load()
        folder = out / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_original):
            buffer = io.BytesIO()
            image.save(buffer, "PNG", **png_options(level))
            (folder / f"{path.stem}_{i}.png").write_bytes(buffer.getvalue())
            n += 1
    return n


def child_reencode(files: list[Path], out: Path, level: str) -> int:
    """Re-encode floor: decode each of the block's outputs and encode it again (what its content costs)."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        image = Image.open(path)
        image.load()
        buffer = io.BytesIO()
        image.save(buffer, "PNG", **png_options(level))
        (out / f"{i}.png").write_bytes(buffer.getvalue())
    return len(files)


def child_notebook(files: list[Path], out: Path) -> int:
    """The workshop notebook's pipeline (seed-workshop.md section 1-2) on current scikit-image.

    Same calls, order and counts as the notebook's create_transforms: original, create_flipped twice,
    create_rotated [45, 90, 135], create_random_zooms(1.3, 2), create_random_translations(3),
    create_noisy(gaussian, poisson, s&p); outputs `<out>/<label>/<root>_<i>.png`. The only changes are the
    ones current scikit-image forces (`channel_axis` for `multichannel`, `rng` for `seed`) and a sorted file
    list (the notebook iterates os.listdir).
    """
    import numpy as np
    from PIL import Image
    from skimage.transform import AffineTransform, rescale, rotate, warp
    from skimage.util import random_noise

    def create_flipped(img):
        return [np.fliplr(img), np.flipud(img), np.flipud(np.fliplr(img))]

    def create_rotated(img, rotations):
        return [rotate(img, angle=rot, mode="edge", preserve_range=True).astype(np.uint8) for rot in rotations]

    def create_random_zooms(img, scale_factor, num_crops):
        h, w = img.shape[0], img.shape[1]
        axis = 2 if img.ndim == 3 else None
        scaled = rescale(img, scale_factor, anti_aliasing=True, preserve_range=True, channel_axis=axis)
        scaled = scaled.astype(np.uint8)
        s_h, s_w = scaled.shape[0], scaled.shape[1]
        crops = []
        for _ in range(num_crops):
            crop_y = round(random.random() * (s_h - h))
            crop_x = round(random.random() * (s_w - w))
            crops.append(scaled[crop_y : crop_y + h, crop_x : crop_x + w])
        return crops

    def create_random_translations(img, num_translations):
        h, w = img.shape[0], img.shape[1]
        out = []
        for _ in range(num_translations):
            tr_y = round((0.5 - random.random()) * (h / 2))
            tr_x = round((0.5 - random.random()) * (w / 2))
            tform = AffineTransform(translation=(tr_y, tr_x))
            out.append(warp(img, tform, mode="edge", preserve_range=True).astype(np.uint8))
        return out

    def create_noisy(img, noise_types):
        return [(random_noise(img, mode=t) * 255).astype(np.uint8) for t in noise_types]

    random.seed(42)
    n = 0
    for path in files:
        img = np.asarray(Image.open(path))
        variants = [
            [img],
            create_flipped(img),
            create_flipped(img),
            create_rotated(img, [45, 90, 135]),
            create_random_zooms(img, 1.3, 2),
            create_random_translations(img, 3),
            create_noisy(img, ("gaussian", "poisson", "s&p")),
        ]
        folder = out / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(x for group in variants for x in group):
            Image.fromarray(image).save(folder / f"{path.stem}_{i}.png")
            n += 1
    return n


def child_main(argv: list[str]) -> None:
    name, out, level, per_original, *paths = argv
    files = [Path(p) for p in paths]
    if name == "floor":
        child_floor(files, Path(out), int(per_original), level)
    elif name == "reencode":
        child_reencode(files, Path(out), level)
    elif name == "notebook":
        child_notebook(files, Path(out))


# ---------------------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Result:
    name: str
    outputs: int
    wall: float
    cpu: float
    peak_rss_kib: int = 0  # the process tree's
    out_bytes: int = 0
    peak_process_kib: int = 0  # the largest single process's (with workers: a worker's, on big images)

    @property
    def per_cpu(self) -> float:
        return self.outputs / self.cpu if self.cpu else 0.0

    @property
    def per_wall(self) -> float:
        return self.outputs / self.wall if self.wall else 0.0


def measure(name: str, command: list[str], out: Path, cwd: Path = ROOT) -> Result:
    """Run ``command`` to completion; wall, CPU of it and its children, peak RSS of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks = watch_memory(proc)
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    peak_tree, peak_process = peaks()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{name} failed ({proc.returncode}):\n{output[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    images = [p for p in out.rglob("*") if p.suffix in (".png", ".jpg")]
    return Result(name, len(images), wall, cpu, peak_tree, sum(p.stat().st_size for p in images), peak_process)


def compile_block(root: Path = ROOT) -> None:
    """Byte-compile the block once, as its image does (Dockerfile: compileall): a checkout run with
    PYTHONDONTWRITEBYTECODE would otherwise compile every module on every run (about 80 ms of CPU a run). A
    checkout it cannot write to gets one note, not compileall's error per module on stdout amid the tables."""
    import compileall

    modules = compileall.compile_dir(root / "augment", quiet=2)
    entrypoint = compileall.compile_file(root / "transform.py", quiet=2)
    if not (modules and entrypoint):
        _not_compiled(root)


@functools.cache
def _not_compiled(root: Path) -> None:
    print(f"note: could not byte-compile {root} (read-only?): each block run compiles its modules", file=sys.stderr)


def block(name: str, data: Path, out: Path, *args: str) -> Result:
    compile_block()
    command = [sys.executable, "-u", str(ROOT / "transform.py"), "--in-directory", str(data)]
    return measure(name, [*command, "--out-directory", str(out), *args], out)


def child(name: str, kind: str, files: list[Path], out: Path, level: str = "6rle", per_original: int = 1) -> Result:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(out), str(level), str(per_original)]
    return measure(name, [*command, *map(str, files)], out)


def first_output(command: list[str], out: Path, cwd: Path) -> tuple[float, float]:
    """Seconds from starting ``command`` until a file appears under ``out``, and until it exits."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first, done = time_first_output(proc, out, start)
    if first is None and any(p.is_file() for p in out.rglob("*")):
        first = done
    return (first if first is not None else float("nan")), done


def best_of(n: int, command: list[str]) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


# ---------------------------------------------------------------------------------------------------------
# Data sets made for the bench


def replicate(data: Path, target: Path, times: int) -> Path:
    """``data`` repeated ``times`` times under distinct names (symlinks): 250 -> 250 * times samples."""
    for path in sorted(data.rglob("*.png")):
        folder = target / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        for r in range(times):
            os.symlink(path, folder / f"r{r:02d}_{path.name}")
    return target


def large_images(data: Path, target: Path, count: int) -> Path:
    """``count`` 640x480 RGB photos made by upscaling the workshop images (smooth, camera-like content)."""
    from PIL import Image

    for path in sorted(data.rglob("*.png"))[:: max(1, 250 // count)][:count]:
        folder = target / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.open(path).convert("RGB").resize((640, 480), Image.Resampling.BICUBIC)
        image.save(folder / path.name, compress_level=6)
    return target


# ---------------------------------------------------------------------------------------------------------


def row(r: Result, floor: Result | None, note: str = "") -> str:
    vs = f"{r.per_cpu / floor.per_cpu:>6.2f}x" if floor else "       "
    size = f"{r.out_bytes / r.outputs / 1024:>7.1f}" if r.outputs else "      -"
    return (
        f"{r.name:<46} {r.outputs:>6} {r.wall:>6.2f} {r.per_wall:>6.0f} {r.cpu:>6.2f} {r.per_cpu:>6.0f} {vs} "
        f"{r.peak_rss_kib / 1024:>6.0f} {size} {note}"
    )


HEADER = (
    f"{'run':<46} {'outputs':>6} {'wall s':>6} {'out/s':>6} {'cpu s':>6} {'out/cpu-s':>6} {'vs floor':>7} "
    f"{'RSS MiB':>6} {'KiB/out':>7}"
)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=NOTEBOOK_PER_ORIGINAL, help="outputs per original")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--skip-container", action="store_true")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no dataset at {args.data} (pass --data)")
    try:
        import skimage  # noqa: F401
    except ImportError:
        sys.exit("scikit-image is needed for the notebook baseline: pip install -r bench/requirements.txt")
    files = sorted(args.data.rglob("*.png"))
    n = args.copies
    common = ["--copies", str(n), "--include-originals", "0", "--preset", args.preset]
    print(
        f"{len(files)} originals from {args.data}; {n} outputs per original; block preset {args.preset}; "
        f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average at start {os.getloadavg()[0]:.1f} (wall times need idle cores)\n"
    )
    tmp = Path(tempfile.mkdtemp(prefix="edge-augment-bench-"))
    try:
        r = {}
        r["floor"] = child("I/O floor: decode once, encode N (PNG 6 RLE)", "floor", files, tmp / "floor", "6rle", n)
        r["floor_z"] = child("I/O floor, zlib default strategy (PNG 6)", "floor", files, tmp / "floor_z", "6", n)
        r["notebook"] = child("workshop notebook (scikit-image, PNG 6)", "notebook", files, tmp / "nb")
        r["w1"] = block("block --workers 1", args.data, tmp / "w1", *common, "--workers", "1")
        outputs = sorted((tmp / "w1").rglob("*.png"))
        r["reencode"] = child("re-encode floor: block's outputs again (PNG 6 RLE)", "reencode", outputs, tmp / "re")
        r["w2"] = block("block --workers 2", args.data, tmp / "w2", *common, "--workers", "2")
        # The notebook's own ops (--preset workshop: 14 variants + the original, its 3 duplicate flips dropped).
        workshop = ["--preset", "workshop", "--include-originals", "1"]
        for workers in (1, 2):
            key, label = f"ws{workers}", f"block --preset workshop --workers {workers} (15/original)"
            r[key] = block(label, args.data, tmp / key, *workshop, "--workers", str(workers))
        shutil.rmtree(tmp / "ws1")
        shutil.rmtree(tmp / "ws2")
        for folder in ("floor", "floor_z", "nb", "re"):
            shutil.rmtree(tmp / folder)
        shutil.rmtree(tmp / "w1")
        shutil.rmtree(tmp / "w2")
        for key, label, extra in ENCODINGS:
            r[key] = block(f"block --workers 2 {label}", args.data, tmp / key, *common, "--workers", "2", *extra)
            shutil.rmtree(tmp / key)

        # (d) RSS: 1x and 20x (replicated by symlinks), 2 workers, 2 copies each.
        x20 = replicate(args.data, tmp / "x20", 20)
        rss = ["--copies", "2", "--preset", args.preset, "--workers", "2"]
        r["rss1"] = block("RSS 1x (250 images, --copies 2, 2 workers)", args.data, tmp / "rss1", *rss)
        r["rss20"] = block("RSS 20x (5,000 images, --copies 2, 2 workers)", x20, tmp / "rss20", *rss)
        shutil.rmtree(tmp / "rss1")
        shutil.rmtree(tmp / "rss20")

        # 640x480: PNG level 6 vs 1 vs JPEG, 2 workers.
        big = large_images(args.data, tmp / "big", 24)
        bigargs = ["--copies", "4", "--include-originals", "0", "--preset", args.preset, "--workers", "2"]
        big_rows = [
            block("640x480 PNG 6, 2 workers", big, tmp / "b6", *bigargs),
            block("640x480 PNG 1, 2 workers", big, tmp / "b1", *bigargs, "--png-compression", "1"),
            block("640x480 JPEG q 90, 2 workers", big, tmp / "bj", *bigargs, "--image-format", "jpeg"),
        ]

        # (e) start-up: import time of the entrypoint, venv start -> first output, container start -> first output.
        python = [sys.executable]
        bare = best_of(5, [*python, "-c", "pass"])
        imported = best_of(5, [*python, "-c", "import transform"])
        helped = best_of(5, [*python, "-u", "transform.py", "--help"])
        one = tmp / "one" / "capacitor"
        one.mkdir(parents=True)
        shutil.copyfile(files[len(files) // 2], one / "0.png")
        venv_first, venv_done = first_output(
            [*python, "-u", str(ROOT / "transform.py"), "--in-directory", str(one.parent), "--out-directory",
             str(tmp / "vout"), "--copies", "4", "--workers", "1"], tmp / "vout", ROOT)  # fmt: skip
        container = container_start(tmp, one.parent, args.skip_container)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    floor = r["floor"]
    print(HEADER)
    for key in ("floor", "floor_z", "reencode", "notebook", "w1", "w2", "ws1", "ws2", *(k for k, _, _ in ENCODINGS)):
        print(row(r[key], floor))
    print()
    for res in big_rows:
        print(row(res, None))
    print()
    print(row(r["rss1"], None))
    print(row(r["rss20"], None))
    nb = r["notebook"]
    print("\nratios (per CPU-second unless wall):")
    w1, w2 = r["w1"], r["w2"]
    ratios = [
        ("(a) block w1 vs notebook, per CPU-s", w1.per_cpu / nb.per_cpu, ""),
        ("(a) block w2 vs notebook, wall", w2.per_wall / nb.per_wall, ""),
        ("(a) block --preset workshop w1 vs notebook, per CPU-s", r["ws1"].per_cpu / nb.per_cpu, ""),
        ("(a) block --preset workshop w2 vs notebook, wall", r["ws2"].per_wall / nb.per_wall, ""),
        ("(a) block w2 (PNG 6 RLE) vs notebook (PNG 6), wall", w2.per_wall / nb.per_wall, "target >= 4"),
        ("(a) block w2 PNG 1 vs notebook (PNG 6), wall", r["png1"].per_wall / nb.per_wall, "target >= 4"),
        ("(a) block w2 JPEG q90 vs notebook (PNG 6), wall", r["jpg90"].per_wall / nb.per_wall, "target >= 4"),
        ("(a) notebook vs its own encoder's floor (PNG 6 zlib)", nb.per_cpu / r["floor_z"].per_cpu, ""),
        ("(b) RLE vs zlib-default I/O floor (the encoder alone)", floor.per_cpu / r["floor_z"].per_cpu, ""),
        ("(b) block w1 vs I/O floor", w1.per_cpu / floor.per_cpu, "target >= 0.90"),
        ("(b) block w1 vs re-encode floor of its own outputs", w1.per_cpu / r["reencode"].per_cpu, ""),
        ("(b) re-encode floor vs I/O floor (cost of the content)", r["reencode"].per_cpu / floor.per_cpu, ""),
        ("(c) workers 2 vs 1, wall", w1.wall / w2.wall, "target >= 1.8"),
        ("(c) workers 2 vs 1, outputs per CPU-s (parallel overhead)", w2.per_cpu / w1.per_cpu, ""),
        ("(d) peak RSS 20x / 1x (process tree)", r["rss20"].peak_rss_kib / r["rss1"].peak_rss_kib, "target <= 1.2"),
    ]
    for label, value, target in ratios:
        print(f"  {label:<58} {value:5.2f}x   {target}")
    print(f"  (e) entrypoint import {imported - bare:.3f} s (python start {bare:.3f} s, --help {helped:.3f} s)")
    print(
        f"  (e) venv start -> first output {venv_first:.3f} s (done {venv_done:.3f} s; 1 image, 4 copies; target < 0.5)"
    )
    print(f"  (e) {container}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


def container_start(tmp: Path, data: Path, skip: bool) -> str:
    """podman run -> first output, with the test image, if podman and the image are there."""
    if skip:
        return "container: skipped (--skip-container)"
    if not shutil.which("podman"):
        return "container: skipped (podman not installed)"
    env = dict(os.environ)
    conf = subprocess.run([str(ROOT / "scripts" / "container.sh"), "env"], capture_output=True, text=True, cwd=ROOT)
    source = ""
    for line in conf.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "CONTAINERS_CONF" and value:
            env["CONTAINERS_CONF"] = value
        source = value if key == "SOURCE" else source
    if subprocess.run(["podman", "image", "exists", IMAGE], env=env).returncode != 0:
        return f"container: skipped (image {IMAGE} not built: scripts/container.sh build)"
    mount = tmp / "cdata"
    shutil.copytree(data, mount / "in")
    out = mount / "out"
    out.mkdir()
    os.chmod(mount, 0o777)
    os.chmod(out, 0o777)  # the image's user (uid 10001) writes here
    command = ["podman", "run", "--rm", "--network", "host", "-v", f"{mount}:/data", IMAGE]
    command += ["--in-directory", "/data/in", "--out-directory", "/data/out", "--copies", "4", "--workers", "1"]
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first, done = time_first_output(proc, out, start)
    if proc.returncode != 0:
        return f"container: failed ({proc.returncode}): {proc.stderr.read()[-300:] if proc.stderr else ''}"
    first = first if first is not None else done
    label = subprocess.run(
        ["podman", "image", "inspect", "--format", '{{index .Labels "edge-augment.source"}}', IMAGE],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    stale = "" if label == source else ", built from an older tree"
    return f"container start -> first output {first:.3f} s (done {done:.3f} s; 1 image, 4 copies; {IMAGE}{stale})"


if __name__ == "__main__":
    main()
