"""An operator's state from its binds: up, degraded, down, and which binds say why."""

from __future__ import annotations

from cluster.pool import operator_state


def test_up_degraded_and_down_name_the_binds_that_cannot_send() -> None:
    bound = {"bind": "b1", "state": "bound", "last_error": ""}
    throttled = {"bind": "b2", "state": "throttled", "last_error": ""}
    refused = {"bind": "b3", "state": "refused", "last_error": "check $ULAK_X_PASSWORD"}
    missing = {"bind": "b4", "state": "missing", "last_error": "GetTimeoutError"}
    assert operator_state([bound, throttled]) == ("up", "")
    assert operator_state([bound, refused]) == ("degraded", "b3: refused (check $ULAK_X_PASSWORD)")
    assert operator_state([refused, missing]) == (
        "down",
        "b3: refused (check $ULAK_X_PASSWORD); b4: missing (GetTimeoutError)",
    )
