"""The only place that makes Ray actors: thin wrappers over plain classes, and the makers handed to
``cluster`` (``actors.factories``: every placement and restart choice). Imports ``cluster`` and below."""
