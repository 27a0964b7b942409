"""`make bench`: load-tests chatapi end to end with wrk and writes docs/benchmarks.md."""
