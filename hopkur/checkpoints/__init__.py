"""Small trained checkpoints shipped with hopkur (loaded with importlib.resources)."""
