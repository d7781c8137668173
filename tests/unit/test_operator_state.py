"""An operator's state from its binds: up, degraded, down, and which binds say why."""

from __future__ import annotations

from cluster.send.pool import operator_state


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


def test_a_bind_that_cannot_reach_its_smsc_says_for_how_long_and_how_many_attempts() -> None:
    bound = {"bind": "b1", "state": "bound", "attempts": 0, "down_for": 0.0}
    away = {
        "bind": "b2",
        "state": "reconnecting",
        "attempts": 12,
        "down_for": 94.4,
        "last_error": "ConnectionRefusedError: [Errno 111] Connect call failed",
    }
    assert operator_state([bound, away]) == (
        "degraded",
        "b2: reconnecting for 94 s, 12 attempts (ConnectionRefusedError: [Errno 111] Connect call failed)",
    )
