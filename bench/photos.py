"""Camera photos: the block vs albumentations vs the I/O floor, per CPU-second and wall, in one run.

    python bench/photos.py [--jobs thumbs,1080p,12mp,sizes] [--ops] [--memory] [--photos 60]

Needs the bench-only tools: `.venv/bin/pip install -r bench/requirements.txt` (scikit-image for the sample
photos, albumentations as the peer; never runtime dependencies of the block).

The job is issue #26's, the same for every tool: each copy gets one of hflip, vflip, rotate +-30 degrees,
zoom-crop 1.1-1.3x, translate +-10 %, gaussian noise sigma 10/255, brightness x0.7-1.3. Jobs: ``thumbs``
(the workshop's 250 96x96 PNGs, 15 copies, PNG out), ``1080p`` (60 JPEG photos of 1920x1080, 4 copies, JPEG
q90 out), ``12mp`` (8 JPEGs of 4000x3000, 4 copies), ``sizes`` (the 12 MP set again at --output-size 96x96
and 320x320). The photos are scikit-image's bundled sample photos, each cropped differently and resized to
the camera size, with mild sensor noise (sigma 2/255) so upscaled content is not unnaturally smooth.
The I/O floor decodes each photo once and re-encodes it unchanged once per copy (Pillow: the block's codecs).
albumentations decodes and encodes with OpenCV (its own way), one OpenCV thread per process as the block,
in a process pool of the same size. On the PNG job two more rows use issue #26's own definitions, under
which its 1.36x / 0.72x were measured: the I/O floor and albumentations (1 process) writing PNGs as Pillow
does by default (zlib's default strategy, 2.7x slower than the block's RLE). ``--ops``: CPU ms per op per
image size, the block's kernels next to the Pillow/numpy ones it used before. ``--memory``: peak RSS of a
one-worker run with ``heavy`` on one 12 MP and one 48 MP photo, per pixel.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import DEFAULT_DATA, HEADER, Result, block, measure, row  # noqa: E402

SIGMA = 10 / 255
JOB = [
    {"op": "hflip"},
    {"op": "vflip"},
    {"op": "rotate", "degrees": [-30, 30]},
    {"op": "zoom", "scale": [1.1, 1.3]},
    {"op": "translate", "x": [-0.1, 0.1], "y": [-0.1, 0.1]},
    {"op": "gaussian_noise", "sigma": [SIGMA, SIGMA]},
    {"op": "brightness", "factor": [0.7, 1.3]},
]
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def recipe(copies: int) -> str:
    return json.dumps({"name": "issue-26-job", "copies": copies, "pipeline": [{"one_of": JOB}]})


def make_photos(target: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` JPEG q90 photos of ``size`` from scikit-image's sample photos (varied crops, mild noise)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = target / "photo"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        source = getattr(skimage.data, SAMPLES[i % len(SAMPLES)])()[..., :3]
        h, w = source.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        image = Image.fromarray(source[y : y + ch, x : x + cw]).resize(size, Image.Resampling.BICUBIC)
        noisy = np.asarray(image) + rng.normal(0, 2, (size[1], size[0], 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / f"p{i:03d}.jpg", quality=90)
    return target


# ---------------------------------------------------------------------------------------------------------
# Contenders run as children (`bench/photos.py --child <kind> <out> <copies> <workers> <files...>`)


def child_floor(files: list[Path], out: Path, copies: int, pillow_png: bool = False) -> None:
    """Decode each file once, encode it unchanged ``copies`` times (PNG: the block's settings, or with
    ``pillow_png`` Pillow's defaults, zlib's default strategy)."""
    from PIL import Image

    for path in files:
        image = Image.open(path)
        image.load()
        for i in range(copies):
            buffer = io.BytesIO()
            if path.suffix == ".png":
                image.save(buffer, "PNG", **({} if pillow_png else {"compress_level": 6, "compress_type": 3}))
            else:
                image.save(buffer, "JPEG", quality=90)
            (out / f"{path.parent.name}_{path.stem}_{i}{path.suffix}").write_bytes(buffer.getvalue())


_ALBUMENTATIONS: list = []  # the job, built once per process


def _albumentations_init() -> None:
    import albumentations as A
    import cv2

    cv2.setNumThreads(1)
    replicate = cv2.BORDER_REPLICATE
    job = A.OneOf(
        [
            A.HorizontalFlip(p=1),
            A.VerticalFlip(p=1),
            A.Rotate(limit=30, border_mode=replicate, p=1),
            A.Affine(scale=(1.1, 1.3), border_mode=replicate, p=1),
            A.Affine(translate_percent=(-0.1, 0.1), border_mode=replicate, p=1),
            A.GaussNoise(std_range=(SIGMA, SIGMA), p=1),
            A.ColorJitter(brightness=(0.7, 1.3), contrast=(1, 1), saturation=(1, 1), hue=(0, 0), p=1),
        ],
        p=1,
    )
    _ALBUMENTATIONS.append(job)


def _albumentations_one(task: tuple[Path, Path, int, bool]) -> None:
    import cv2
    import numpy as np
    from PIL import Image

    path, out, copies, pillow_png = task
    job = _ALBUMENTATIONS[0]
    image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR_RGB)
    png = [cv2.IMWRITE_PNG_COMPRESSION, 6, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    params = png if path.suffix == ".png" else [cv2.IMWRITE_JPEG_QUALITY, 90]
    for i in range(copies):
        target = out / f"{path.parent.name}_{path.stem}_{i}{path.suffix}"
        if pillow_png and path.suffix == ".png":  # as most scripts write it (and issue #26's peers did)
            Image.fromarray(job(image=image)["image"]).save(target)
            continue
        augmented = cv2.cvtColor(job(image=image)["image"], cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(path.suffix, augmented, params)
        assert ok
        target.write_bytes(encoded.tobytes())


def child_albumentations(files: list[Path], out: Path, copies: int, workers: int, pillow_png: bool = False) -> None:
    from multiprocessing import Pool

    tasks = [(path, out, copies, pillow_png) for path in files]
    if workers == 1:
        _albumentations_init()
        for task in tasks:
            _albumentations_one(task)
        return
    with Pool(workers, initializer=_albumentations_init) as pool:
        list(pool.imap_unordered(_albumentations_one, tasks, chunksize=4))


def child(name: str, kind: str, files: list[Path], out: Path, copies: int, workers: int = 1) -> Result:
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(out), str(copies), str(workers)]
    return measure(name, [*command, *map(str, files)], out)


# ---------------------------------------------------------------------------------------------------------


def compare(label: str, data: Path, copies: int, work: Path, extra: list[str] | None = None) -> list[Result]:
    """The job on ``data`` by every contender, 1 and 2 workers; printed as a table against the floor."""
    files = sorted(p for p in data.rglob("*") if p.suffix in (".png", ".jpg"))
    args = ["--recipe", recipe(copies), "--include-originals", "0", "--seed", "1", *(extra or [])]
    runs = [("floor", lambda out: child("I/O floor (decode once, encode each copy)", "floor", files, out, copies))]
    for w in (1, 2):
        runs.append(
            (f"block{w}", lambda out, w=w: block(f"block --workers {w}", data, out, *args, "--workers", str(w)))
        )
        name = f"albumentations 2.0.8, {w} process{'es' if w > 1 else ''}"
        runs.append((f"albu{w}", lambda out, w=w, name=name: child(name, "albumentations", files, out, copies, w)))
    png = any(p.suffix == ".png" for p in files)
    if png:  # issue #26's own definitions: PNGs as Pillow writes them by default (zlib's default strategy)
        runs.append(
            ("floor_pil", lambda out: child("I/O floor, Pillow's default PNG", "floor-pil", files, out, copies))
        )
        name = "albumentations, 1 process, Pillow's default PNG"
        runs.append(("albu_pil", lambda out: child(name, "albumentations-pil", files, out, copies, 1)))
    results = []
    for key, run in runs:
        out = work / f"{label}-{key}"
        results.append(run(out))
        shutil.rmtree(out, ignore_errors=True)
    floor = results[0]
    print(f"\n{label}: {len(files)} photos x {copies} copies\n{HEADER}")
    for r in results:
        print(row(r, floor))
    albu = max(r.per_cpu for r in results if r.name.startswith("albumentations"))
    best = max(r.per_cpu for r in results if r.name.startswith("block"))
    print(f"block vs albumentations per CPU-s: {best / albu:.2f}x; block vs floor: {best / floor.per_cpu:.2f}x")
    if png:
        floor_pil, albu_pil = results[-2].per_cpu, results[-1].per_cpu
        print(
            f"issue #26's definitions (floor and peer write Pillow's default PNG): block {best / floor_pil:.2f}x that"
            f" floor, albumentations {albu_pil / floor_pil:.2f}x; block vs that albumentations {best / albu_pil:.2f}x"
        )
    return results


def sizes(data: Path, copies: int, work: Path) -> None:
    """What --output-size saves on the 12 MP set: CPU ms and bytes per output, 2 workers."""
    args = ["--recipe", recipe(copies), "--include-originals", "0", "--seed", "1", "--workers", "2"]
    print("\n--output-size on 12 MP JPEGs (2 workers)")
    print(f"{'size':<12} {'CPU ms/out':>10} {'wall ms/out':>11} {'KiB/out':>8}")
    for size in ("", "320x320", "96x96"):
        out = work / f"size-{size or 'full'}"
        r = block(size, data, out, *args, *(["--output-size", size] if size else []))
        shutil.rmtree(out, ignore_errors=True)
        cpu, wall = r.cpu / r.outputs * 1000, r.wall / r.outputs * 1000
        print(f"{size or 'as source':<12} {cpu:>10.1f} {wall:>11.1f} {r.out_bytes / r.outputs / 1024:>8.1f}")


def ops_table() -> None:
    """CPU ms per image for each op's kernel, by image size, on an RGB frame as decoded (Pillow's 4-byte layout);
    the Pillow/numpy kernels it replaced beside."""
    import cv2
    import numpy as np
    from PIL import Image, ImageFilter

    from augment.render.frame import Frame
    from augment.render.ops import get_op, pixels
    from augment.run.pool import _reuse_freed_memory

    pixels.configure_threads()
    _reuse_freed_memory()  # as each worker does
    params = {
        "hflip": {},
        "rotate": {"degrees": 17.0, "fill": "edge", "fill_value": 0.0},
        "zoom": {"scale": 1.2, "x": 0.3, "y": 0.6},
        "translate": {"dx": 13, "dy": -7, "fill": "edge", "fill_value": 0.0},
        "gaussian_noise": {"sigma": SIGMA, "seed": 3},
        "brightness": {"factor": 1.2},
        "blur": {"sigma": 2.0},
        "sharpen": {"amount": 0.8},
        "hue_saturation": {"hue": 0.05, "saturation": 1.2},
        "salt_pepper": {"amount": 0.01, "salt_ratio": 0.5, "seed": 3},
    }
    rng = np.random.default_rng(0)
    print(f"\nCPU ms per image (min of 3), RGB\n{'kernel':<34} {'96x96':>8} {'1920x1080':>10} {'4000x3000':>10}")
    shapes = [(96, 96), (1920, 1080), (4000, 3000)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for w, h in shapes]
    padded = [cv2.cvtColor(a, cv2.COLOR_RGB2RGBA) for a in images]  # as decoded: Pillow's 4-byte layout

    def timed(fn) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            fn()
            best = min(best, time.process_time() - start)
        return best * 1000

    def line(name: str, cells: list[float]) -> None:
        print(f"{name:<34} " + " ".join(f"{c:>{8 if i == 0 else 10}.2f}" for i, c in enumerate(cells)))

    for name, p in params.items():
        op = get_op(name)
        line(name, [timed(lambda a=a, op=op, p=p: op.apply(Frame(padded=a), p)) for a in padded])
    affine, bilinear = (1, 0.1, 3, 0.1, 1, 2), Image.Resampling.BILINEAR
    before = {
        "before: Pillow bilinear affine": lambda im: im.transform(im.size, Image.Transform.AFFINE, affine, bilinear),
        "before: Pillow GaussianBlur(2)": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
        "before: numpy float32 normal noise": lambda im: (
            np.asarray(im) + np.random.default_rng(1).standard_normal((im.size[1], im.size[0], 3), dtype=np.float32)
        ),
        "JPEG q90 encode (Pillow)": lambda im: im.save(io.BytesIO(), "JPEG", quality=90),
    }
    pil = [Image.fromarray(a) for a in images]
    for name, fn in before.items():
        line(name, [timed(lambda im=im, fn=fn: fn(im)) for im in pil])


def memory(work: Path) -> None:
    """Peak RSS of a one-worker `heavy` run on one photo of 12 and 48 MP: of its largest process (there the
    worker: issue #26's "per worker"; on the 96x96 run it may be the main process) and of the whole tree (with the
    main process), per pixel; and the largest process's peak less that of a 96x96 run."""
    print("\npeak RSS, --workers 1 --preset heavy, one JPEG (sampled every 20 ms)")
    print(f"{'photo':<12} {'process MiB':>11} {'B/pixel':>8} {'over 96x96':>10} {'tree MiB':>9} {'B/pixel':>8}")
    base = None
    for label, size in (("96x96", (96, 96)), ("12 MP", (4000, 3000)), ("48 MP", (8000, 6000))):
        data = make_photos(work / f"mem-{label}", 1, size)
        out = work / f"mem-{label}-out"
        r = block(label, data, out, "--preset", "heavy", "--workers", "1", "--seed", "1")
        shutil.rmtree(out, ignore_errors=True)
        base = base if base is not None else r.peak_process_kib
        pixels = size[0] * size[1]
        worker, tree = r.peak_process_kib * 1024, r.peak_rss_kib * 1024
        over = worker - base * 1024
        print(
            f"{label:<12} {worker / 2**20:>11.0f} {worker / pixels:>8.1f} {over / pixels:>10.1f}"
            f" {tree / 2**20:>9.0f} {tree / pixels:>8.1f}"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, out, copies, workers, *paths = sys.argv[2:]
        files = [Path(p) for p in paths]
        tool, _, variant = kind.partition("-")
        if tool == "floor":
            child_floor(files, Path(out), int(copies), variant == "pil")
        else:
            child_albumentations(files, Path(out), int(copies), int(workers), variant == "pil")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="thumbs,1080p,12mp,sizes", help="comma-separated: thumbs,1080p,12mp,sizes")
    parser.add_argument("--photos", type=int, default=60, help="1080p photos (the 12 MP set has 8)")
    parser.add_argument("--ops", action="store_true", help="also time each op's kernel per image size")
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS at 12 and 48 MP")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the 96x96 PNG set")
    args = parser.parse_args()
    jobs = set(args.jobs.split(",")) - {""}
    print(f"bench/photos.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine shared: wall is noisy")
    with tempfile.TemporaryDirectory(prefix="photos-bench-") as tmp:
        work = Path(tmp)
        if "thumbs" in jobs:
            compare("96x96 PNG", args.data, 15, work)
        if "1080p" in jobs:
            compare("1920x1080 JPEG", make_photos(work / "hd", args.photos, (1920, 1080)), 4, work)
        if jobs & {"12mp", "sizes"}:
            twelve = make_photos(work / "12mp", 8, (4000, 3000))
            if "12mp" in jobs:
                compare("4000x3000 JPEG", twelve, 4, work)
            if "sizes" in jobs:
                sizes(twelve, 4, work)
        if args.ops:
            ops_table()
        if args.memory:
            memory(work)


if __name__ == "__main__":
    main()
