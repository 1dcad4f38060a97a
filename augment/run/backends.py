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
    if config.source.url is not None:
        url, dest = parse_s3_url(config.source.url), parse_s3_url(config.sink.url) if config.sink.url else None
        exclude = dest if dest and url.contains(dest) else None
        return S3Source(url, config.source.label, exclude, *_s3(config))
    if config.source.in_file is not None:
        return LocalSource.from_file(config.source.in_file, config.source.label)
    assert config.source.in_directory is not None
    out = config.sink.out_directory.resolve() if config.sink.url is None else None
    return LocalSource(config.source.in_directory.resolve(), None, config.source.label, out)


def sink_for(config: RunConfig, log: Callable[[str], None] = print) -> Sink:
    """The sink a config writes: an EI project (staged locally), an S3 prefix, or a folder."""
    if config.sink.upload is not None:
        return IngestionSink(config.sink.upload, LocalSink(config.sink.out_directory, temp_tag(config.plan.shard)), log)
    if config.sink.url is not None:
        return S3Sink(parse_s3_url(config.sink.url), *_s3(config))
    return LocalSink(config.sink.out_directory, temp_tag(config.plan.shard))


def _s3(config: RunConfig) -> tuple[str | None, float, int]:
    """The S3 client's endpoint, time limit of a request, and tries of a request."""
    storage = config.storage
    return storage.s3_endpoint, storage.s3_timeout, storage.s3_max_attempts
