"""A simulated Nanjing: department records for the demo, tests and benchmarks."""
