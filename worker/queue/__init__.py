"""Queue mode: jobs in a Redis stream, worked by any number of replicas in one consumer group.

    enqueue ──XADD──► STREAM ──XREADGROUP / XAUTOCLAIM──► consumers (the engine) ──► RESULTS
                                                                   └─ max deliveries ─► DEAD

- streams.py: key names and the message format (what a producer writes).
- redis_link.py: one Redis client, reconnecting with backoff for a bounded time.
- enqueue.py: validate a jobs file and XADD the valid rows in idempotent batches.
- consumer.py: the engine's source (read, claim, dead-letter) and sink (result + ack, atomically).
- shared_limit.py: the rate limit shared by every replica (GCRA on the Redis clock).
- shared_auto.py: --rate auto across replicas, one learner fed from a Redis stream of their outcomes.
- service.py: one consumer process, from settings to exit code.
- status.py, metrics.py: what an operator looks at.
"""
