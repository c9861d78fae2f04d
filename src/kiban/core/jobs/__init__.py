"""Durable background jobs: imports, batch 名寄せ, lottery draws, deliveries, exports.

A module registers a ``Kind`` (a name, a Japanese label and a handler that does one chunk) and
queues work with ``service.enqueue`` in its own transaction. Every server process runs a
``runner.Runner`` (started in the app's lifespan; ``kiban jobs run`` runs one on its own) that
claims due jobs with a lease and runs them chunk by chunk, each chunk in its own short
transaction committed together with the job's cursor and progress. See docs/architecture.md.
"""
