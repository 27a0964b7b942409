"""For the tests and the benchmark, never the service: not packaged, not in the image."""
