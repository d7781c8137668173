"""Every entry point: the HTTP control plane (routes, web manager, metrics, redirects) and the ``ulak``
command (``api.cli``). The top of the layers: it may import ``actors``, ``cluster``, ``ingest``, ``ulak``."""
