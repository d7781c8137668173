"""Ray actors: ThrottleActor and SmppConnectionActor (dispatch core, coming with the dispatch issue).

Actors here stay thin: each owns one piece of I/O or shared state and delegates to plain classes in
``ulak`` that are tested without Ray.
"""
