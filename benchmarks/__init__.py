"""Performance benchmarks: `make bench`, or `python -m benchmarks.<name>`; each prints one JSON object."""
