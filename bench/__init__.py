"""The benchmark harness: `bench/run` (python -m bench); see docs/benchmarks.md."""
