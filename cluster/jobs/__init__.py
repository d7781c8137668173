"""Jobs as Redis records: the state machine, the options a job was submitted with, and its progress view.

The job record lives in Redis, not in any process, so that the control plane and the job actor can
both restart without losing a job. Every state change is one atomic check-and-set (a Lua script):
the API moves a job to ``paused`` or ``cancelling``, the job's actor sees that within its poll interval
and acts; the actor moves it along the rest of the way::

    queued → ingesting → scheduled → sending → draining → done
                 │            │   ↕        │
                 │            └─ paused ───┤
                 └──────→ failed           └──→ cancelling → cancelled

The figures in :meth:`JobStore.view` add up by construction from the ledger's counters:
``rows = accepted + rejected + held_out``, ``accepted = submitted + pending + cancelled``, and
``submitted = acked + failed + unknown + in_flight``.
"""
