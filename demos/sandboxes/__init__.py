"""Standalone programs that demos start as subprocesses.

Most use the standard library only and never import Django or the demo
engine, so whatever they measure (memory, threads, descriptors) belongs to
them alone. Two need more: `offload_server` enqueues real Celery jobs, so it
loads the project's Celery app, and `race_stepper` holds two psycopg
connections. Not demo modules: the registry only looks inside `demos/library/`.
"""
