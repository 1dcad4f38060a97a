"""What an output folder holds beside the outputs: images no manifest records, per-shard file names, and
the ``bounding_boxes.labels`` of each folder.

The manifest header is written before the first output, so every file a run of these settings wrote is
either recorded or was cut off by a hard kill; a rerun regenerates planned outputs that are not recorded
(the same bytes, so it adopts them verified). Images that are neither planned nor recorded by any manifest
in the folder belong to someone or something else: the run refuses to write beside them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from augment.books.manifest import MANIFEST, ManifestMismatchError, json_object, parse_entry, read_entries
from augment.config import RunConfig
from augment.plan.index import RunIndex
from augment.plan.labels import BOXES_FILE, labels_file_text
from augment.plan.samples import printable
from augment.plan.selection import Shard
from augment.render.codec import IMAGE_EXTENSIONS
from augment.sinks import Sink
from augment.storage.overlap import below
from augment.storage.s3_url import parse_s3_url

_OWN = ("preview.png", "preview-")  # contact sheets the block writes at the top level


def check_manifests(
    config: RunConfig,
    sink: Sink,
    index: RunIndex,
    own: str,
    fingerprint: str,
    mine: Callable[[str], bool],
    read: str | None = None,
) -> None:
    """Every manifest in the destination (this run's ``own`` and any other run's, sharded or not): another
    run's must be of these settings, else ManifestMismatchError (writing here would overwrite or mix with
    the files it records); with --overwrite 1 a sibling shard's (same count) may differ, its files being
    disjoint from this shard's. Their outputs go into the index: known to ``foreign_images``, and, when
    another run of these settings recorded one this run plans (``mine``), adopted (never rewritten). This
    run's own manifest, already read and loaded (``read``: its version then), is not read again while its
    version is the same (a resumed run on S3: the manifest and each part a round trip)."""
    sink.refresh(config.sink.books + "manifest")  # a run that started since this one listed the destination
    for name in sink.manifests(config.sink.books):
        if name == own and read is not None and sink.version(name) == read:
            continue  # its header was checked and its outputs loaded as the run's earlier ones
        lines = sink.read_lines(name)
        first = next(lines, None) if lines is not None else None
        if lines is None or first is None:
            continue
        header = json_object(first)
        same = header is not None and header.get("fingerprint") == fingerprint
        # its own name too: of other settings here only when another run wrote it after this one read it
        if not same and not (config.sink.overwrite and (name == own or _sibling(name, config.plan.shard))):
            raise ManifestMismatchError(
                f"{sink.describe()} holds {name} of another run with another recipe, seed, format or layout;"
                " this run would overwrite or mix with the files it records: use another destination, or"
                " remove that run's outputs and manifest"
            )
        adopt = same and name != own
        index.load_others((out, line if adopt and mine(out) else None) for out, line in read_entries(lines))


def _sibling(name: str, shard: Shard) -> bool:
    """Whether manifest ``name`` is another shard's of this run's shard count."""
    match = re.search(r"manifest\.shard-\d+-of-(\d+)\.jsonl$", name)
    return shard.active and match is not None and int(match.group(1)) == shard.count


def unrecorded_images(names: Iterable[str], known: Callable[[str], bool]) -> Iterator[str]:
    """The image files among ``names`` (a destination's, relative) that ``known`` does not accept, leaving out
    hidden files and the block's own contact sheets."""
    for name in names:
        folder, _, leaf = name.rpartition("/")
        if leaf.startswith(".") or posixpath.splitext(leaf)[1].lower() not in IMAGE_EXTENSIONS:
            continue
        if not (not folder and leaf.startswith(_OWN)) and not known(name):
            yield name


def foreign_images(config: RunConfig, sink: Sink, index: RunIndex) -> str | None:
    """Why the destination (a folder or an S3 prefix) cannot be written: it holds images neither planned nor
    recorded by any manifest there (another tool's, or an older version's unrecorded outputs). Planned but
    unrecorded outputs (a run killed before its checkpoint) are simply regenerated."""
    skip = input_inside_output(config)  # an input inside the output is not looked into
    if skip == "":
        return None
    foreign = unrecorded_images(sink.names(skip), index.known)
    first = next(foreign, None)
    if first is None:
        return None
    total = 1 + sum(1 for _ in foreign)  # the same listing, counted on
    where = "an empty --dest prefix" if config.sink.url is not None else "an empty --out-directory"
    return (
        f"{sink.describe()} holds {total} image(s) that no manifest there records and this run would not write"
        f" (e.g. {printable(first)!r}); move them away or use {where}"
    )


def input_inside_output(config: RunConfig) -> str | None:
    """Where the input sits inside the output (``""``: they are one, say through a bind mount): a local
    folder by real path and identity, an S3 source prefix below the --dest prefix; None when it does not."""
    if config.source.url is not None and config.sink.url is not None:
        source, dest = parse_s3_url(config.source.url), parse_s3_url(config.sink.url)
        return source.prefix.removeprefix(dest.prefix).rstrip("/") if dest.contains(source) else None
    if config.sink.url is not None or config.source.in_directory is None:
        return None
    return below(config.sink.out_directory, config.source.in_directory)


def into_input(config: RunConfig, name: str) -> str:
    """Why a run whose output ``name`` would land in its own input is refused."""
    if config.sink.url is not None:
        where, what = f"--dest {config.sink.url}", f"--source {config.source.url}"
    else:
        where, what = f"--out-directory {config.sink.out_directory}", f"--in-directory {config.source.in_directory}"
    return (
        f"{where} holds the input ({what}): outputs such as {printable(name)!r} would land in it and be read as"
        " inputs by the next run; write outside the input (or inside it)"
    )


def suffixed(name: str, suffix: str) -> str:
    """``manifest.jsonl`` -> ``manifest.shard-0-of-4.jsonl``."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}{suffix}{dot}{ext}" if suffix else name


def write_box_labels(sink: Sink, lines: Iterable[str], shard: Shard, books: str = "") -> None:
    """A ``bounding_boxes.labels`` in every output folder that holds images with boxes, from this run's
    manifest ``lines`` and every other manifest in the folder (other shards', an unsharded run's; this run's
    lines win for an output both record).

    Runs sharing a folder each write the union, so the last one to finish leaves complete files (two
    shards finishing at the same instant can still race: rerun one). Memory: the boxes of a detection
    dataset's outputs, while the files are made. The files are written at once (on S3 each is a round trip)."""
    own = books + suffixed(MANIFEST, shard.suffix())
    sink.refresh(books + "manifest")  # other shards may have finished since this run listed the destination
    sources: list[Iterable[str]] = []
    for name in sink.manifests(books):
        text = sink.read_lines(name) if name != own else None
        if text is not None:
            sources.append(line for i, line in enumerate(text) if i > 0)
    sources.append(lines)
    folders: dict[str, dict[str, list]] = {}
    for source in sources:
        for line in source:
            entry = parse_entry(line)  # None for a line of another shard's manifest cut by a hard kill
            if entry is not None and entry.boxes is not None:
                folder, filename = posixpath.split(entry.output)
                folders.setdefault(folder, {})[filename] = list(entry.boxes)
    with ThreadPoolExecutor(min(16, len(folders) or 1), thread_name_prefix="labels") as pool:  # at 50 ms a file
        list(
            pool.map(
                lambda item: sink.write_text(posixpath.join(item[0], BOXES_FILE), labels_file_text(item[1])),
                folders.items(),
            )
        )
