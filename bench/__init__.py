"""The benchmarks; their own modules import each other as ``bench.<name>``."""
