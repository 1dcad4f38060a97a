"""Where outputs go. Each sink stores named outputs whole (never partially); it knows nothing of sources."""

from __future__ import annotations

from typing import Protocol


class SinkError(RuntimeError):
    """The destination cannot be written; the message names the path or object."""


class Sink(Protocol):
    def describe(self) -> str: ...

    def exists(self, name: str) -> bool: ...

    def write(self, name: str, data: bytes) -> None: ...

    def read_text(self, name: str) -> str | None: ...

    def write_text(self, name: str, text: str) -> None: ...
