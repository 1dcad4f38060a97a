"""Which source and sink a run uses: the one place that knows every I/O backend (each backend module knows
only its own)."""

from __future__ import annotations

from collections.abc import Callable

from augment.config import RunConfig
from augment.sinks import Sink
from augment.sinks.ingestion import IngestionSink
from augment.sinks.local import LocalSink
from augment.sinks.lock import temp_tag
from augment.sinks.s3 import S3Sink
from augment.sources import Source
from augment.sources.local import LocalSource
from augment.sources.s3 import S3Source
from augment.storage.s3_url import parse_s3_url


def source_for(config: RunConfig) -> Source:
    """The source a config reads: an S3 prefix, one file, or a folder (its out-directory left out)."""
    if config.source is not None:
        url, dest = parse_s3_url(config.source), parse_s3_url(config.dest) if config.dest else None
        return S3Source(url, config.label, dest if dest and url.contains(dest) else None, config.s3_endpoint)
    if config.in_file is not None:
        return LocalSource.from_file(config.in_file, config.label)
    assert config.in_directory is not None
    out = config.out_directory.resolve() if config.dest is None else None
    return LocalSource(config.in_directory.resolve(), None, config.label, out)


def sink_for(config: RunConfig, log: Callable[[str], None] = print) -> Sink:
    """The sink a config writes: an EI project (staged locally), an S3 prefix, or a folder."""
    if config.upload is not None:
        return IngestionSink(config.upload, LocalSink(config.out_directory, temp_tag(config.shard)), log)
    if config.dest is not None:
        return S3Sink(parse_s3_url(config.dest), config.s3_endpoint)
    return LocalSink(config.out_directory, temp_tag(config.shard))
