"""Background jobs: named, periodic, gated by configuration, leased when they must run in one place at a time.

Nothing periodic lives in the HTTP application: upload purging and outbox pruning are jobs, and so will be
garbage collection, retention and proxy expiry. The `portside` commands and the runner call the same library
functions.
"""

from portside.jobs.runner import Job, JobRunner

__all__ = ["Job", "JobRunner"]
