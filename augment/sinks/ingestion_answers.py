"""What an HTTP 200 from the ingestion service says about each file of the request.

A file counts as stored only when the answer says so: EI's JSON with a per-file ``success: true`` (the shape
EI's own client reads, ``{"success", "error"?, "files": [{"success", "error"?, ...}]}``, edge-impulse-cli
cli-common/make-image.ts), or the documented text/plain answer naming the file (ei-contract.md section 4.2).
Anything else (an HTML page, an empty body, JSON that does not parse or has another shape, a text that names
no file, an entry naming another file of the request) is UNCONFIRMED: the uploader sends the file again
(``x-disallow-duplicates`` makes a resend of a stored file come back as a duplicate), reports it if the doubt
remains, and never books it as landed. A top-level ``success: false`` that no file's own failure explains
fails every file of the request.
"""

from __future__ import annotations

import json
import re
from typing import Any

from augment.plan.labels import BOXES_FILE

LANDED, FAILED, UNCONFIRMED = "landed", "failed", "unconfirmed"
_NO_REASON = "rejected, no reason given"

Result = tuple[str, str, Any]  # (LANDED | FAILED | UNCONFIRMED, error, sample id)


def answer_results(names: list[str], labels_part: bool, text: str, content_type: str) -> list[Result] | None:
    """One result per file of a request answered HTTP 200 (``names``: its ``data`` parts in order, the
    ``bounding_boxes.labels`` part left out), or None when a batch answer cannot be matched to its files.

    JSON is matched by position: ``files`` may list the labels part (last) or not; extra fields (``fileName``,
    ``sampleId``...) are never needed."""
    body = parse_json(text)
    if isinstance(body, dict):
        return _json_results(names, labels_part, body)
    media = content_type.split(";")[0].strip().lower()
    if body is None and media == "text/plain" and text.strip():
        return [(LANDED, "", None) if _names(text, n) else (UNCONFIRMED, _NOT_NAMED, None) for n in names]
    return [(UNCONFIRMED, _unusable(media, text, body), None)] * len(names)


_NOT_NAMED = "HTTP 200, but the text answer does not name the file"


def _json_results(names: list[str], labels_part: bool, body: dict[str, Any]) -> list[Result] | None:
    count = len(names)
    top_error = str(body.get("error") or _NO_REASON)
    files = body.get("files")
    if not isinstance(files, list) or not files:
        if body.get("success") is False:  # the request refused as a whole
            return [(FAILED, top_error, None)] if count == 1 else None
        return [(UNCONFIRMED, "HTTP 200, but the JSON answer has no result per file", None)] * count
    entries = [f if isinstance(f, dict) else {} for f in files]
    labels = entries[count] if labels_part and len(entries) == count + 1 else None
    if body.get("success") is False and not any(e.get("success") is False for e in entries):
        return [(FAILED, top_error, None)] * count  # refused as a whole, no file's failure explains it
    if len(entries) != count and labels is None:
        if count > 1:
            return None
        failed = [e for e in entries if e.get("success") is False]
        if failed:
            return [(FAILED, str(failed[0].get("error") or top_error), None)]
        if all(e.get("success") is True for e in entries):
            return [(LANDED, "", entries[0].get("sampleId"))]
        return [(UNCONFIRMED, "HTTP 200, but the JSON answer has no result for the file", None)]
    if labels is not None and labels.get("success") is not True:  # the boxes did not attach
        error = f"bounding_boxes.labels: {labels.get('error') or top_error}"
        return [(FAILED, error, None)] if count == 1 else None
    parts = [*names, BOXES_FILE] if labels_part else names  # every part of the request, by name
    return [_entry(e, top_error, names[i], parts) for i, e in enumerate(entries[:count])]


def _entry(entry: dict[str, Any], top_error: str, name: str, parts: list[str]) -> Result:
    named = entry.get("fileName")
    if isinstance(named, str) and named != name and named in parts:  # another part's result (reordered, missing)
        return UNCONFIRMED, f"HTTP 200, but the JSON answer gives {named}'s result in this file's place", None
    if entry.get("success") is True:
        return LANDED, "", entry.get("sampleId")
    if entry.get("success") is False:
        return FAILED, str(entry.get("error") or top_error), None
    return UNCONFIRMED, "HTTP 200, but the JSON answer has no result for the file", None


def _names(text: str, name: str) -> bool:
    """Does ``text`` name ``name`` (not merely contain it inside a longer name)?"""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", text) is not None


def _unusable(media: str, text: str, body: Any) -> str:
    if not text.strip():
        return "HTTP 200 with an empty answer"
    if body is not None:
        return "HTTP 200, but the JSON answer has another shape"
    if "json" in media or text.lstrip().startswith(("{", "[")):
        return "HTTP 200, but the JSON answer does not parse (cut short?)"
    return f"HTTP 200 with a {media or 'untyped'} answer ({len(text)} characters), not Edge Impulse's"


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
