"""An SMSC simulator speaking SMPP 3.4 over TCP, for tests, the demo and benchmarks (``ulak sim``).
It imports only ``ulak.smpp``: an independent peer to test the binds against, not a part of the send path."""
