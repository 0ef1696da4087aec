"""Benchmarks (`cgphw bench`): the compiled loop's speed (speed.py) and search operators
compared (operators.py). Beside the core packages: they use the search, nothing uses them."""
