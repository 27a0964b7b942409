"""Reliability tests: the service under a database restart and under concurrent load."""
