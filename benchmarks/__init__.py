"""accord's benchmark harness (not installed; run ``python -P benchmarks/run.py``)."""
