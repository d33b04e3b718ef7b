"""Standalone scripts that demos start as subprocesses.

They use the standard library only and never import Django or the demo
engine: a demo runs them with `sys.executable path/to/script.py`, so whatever
they measure (memory, threads, descriptors) belongs to them alone. Not demo
modules: the registry only looks inside `demos/library/`.
"""
