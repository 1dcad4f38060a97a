"""edge-augment: an Edge Impulse transformation block that augments labelled image datasets."""

import os

__version__ = "0.1.0"

# The block's parallelism is its worker processes. Without these, numpy's and OpenCV's OpenBLAS start a thread
# per core as they are imported, and those threads spin after the few 3x3 matrix products a run makes: 0.16 s of
# CPU a run of 0.42 (docs/performance.md). Set before anything imports numpy; a value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
