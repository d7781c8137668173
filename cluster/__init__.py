"""The work of the cluster as plain classes, in the order a row meets them: ``jobs`` (options, state,
store, views), ``send`` (runner, pool, winner), ``engagement``, ``reports``, ``webhooks``; ``plane`` is
the API's one door to them. Imports ``ingest`` and ``ulak``, never ``actors`` or ``api`` (it is handed
what makes actors)."""
