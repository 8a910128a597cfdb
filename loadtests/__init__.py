"""Load tests (Locust) and benchmarks of the self-check service. See README.md."""
