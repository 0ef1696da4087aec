"""The CGP engine: genomes, compiled kernels, the search and its run directories."""
from cgphw.cgp.jit import use_writable_cache

use_writable_cache()  # before any kernel module is imported (numba fixes its cache dir then)
