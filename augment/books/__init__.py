"""Bookkeeping: the manifest, the report, the output folder's own files, the preview and the dry run."""
