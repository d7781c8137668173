"""The ``ulak`` command and what it starts on one machine: the local stack, the demo, the console
views, a cluster node. An entry point like the HTTP API: it may import every other package."""
