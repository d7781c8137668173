"""Replies: what recipients send back (MO), read, put together, and acted on (issue 17)."""
