"""hopkur's benchmark suite: run it with `hopkur bench` or `make bench` (README.md)."""
