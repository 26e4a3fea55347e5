"""The multi-worker layer of a run: several processes, or machines, share one migration.

`partitions` splits the documents into id ranges, `board` leases them in MongoDB, `session`
publishes the run's settings, `participants` keeps each participant's heartbeat and totals,
`worker` is one worker process (`python -m ishan_tools.migrate.parallel.worker`) and
`supervisor` starts the workers and waits for them.
"""
