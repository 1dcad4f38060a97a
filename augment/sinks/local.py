"""A local (or mounted) output folder. Every write is a temp file renamed into place."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from augment.sinks import SinkError


@dataclass(frozen=True)
class LocalSink:
    root: Path

    def describe(self) -> str:
        return str(self.root)

    def path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise SinkError(f"refusing to write {name!r}: it would land outside {self.root}")
        return path

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def write(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``name`` atomically: readers see the old file or the whole new one."""
        target = self.path(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
        except OSError as e:
            raise SinkError(f"cannot write {target}: {e.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException as e:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise SinkError(f"cannot write {target}: {e.strerror}") from None
            raise

    def read_text(self, name: str) -> str | None:
        path = self.path(name)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def write_text(self, name: str, text: str) -> None:
        self.write(name, text.encode("utf-8"))
