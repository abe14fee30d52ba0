"""Real HTTP servers on 127.0.0.1 for the download tests and benchmarks."""
