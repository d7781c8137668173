"""Dispatch logic as plain classes (the Ray actors in ``actors/`` wrap these): throttling, routing."""
