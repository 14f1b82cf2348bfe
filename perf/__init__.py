"""pyperf benchmarks of the worker's hot paths; see perf/README.md."""
