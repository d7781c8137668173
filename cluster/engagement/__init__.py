"""What recipients do after a message: replies and surveys, follow-ups, clicks and conversions, the
events archive. Owns their Redis streams and counters; imports ``cluster.jobs``, ``ingest``, ``ulak``."""
