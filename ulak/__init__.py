"""Ulak: a distributed bulk-SMS dispatch cluster (SMPP over Ray, state in Redis)."""

__version__ = "0.1.0"
