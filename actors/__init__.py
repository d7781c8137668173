"""Ray actors, thin wrappers over plain classes in ``ulak.dispatch``.

``actors.factories`` applies ``ray.remote`` options (names, restarts, concurrency) in one place.
"""
