"""The bind's transition table (``ulak.dispatch.bindstate``): what each event does in each state."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ulak.dispatch.bindstate import DOWN, UP, BindEvent, BindState, next_state

S, E = BindState, BindEvent


def test_a_refused_or_failed_bind_says_so_while_it_retries_until_it_is_bound() -> None:
    for stuck in (S.REFUSED, S.FAILED):
        assert next_state(stuck, E.CONNECT, to=S.RECONNECTING) is stuck
        assert next_state(stuck, E.BOUND) is S.BOUND


def test_the_send_loop_s_path() -> None:
    state = S.CONNECTING
    for event, to, expected in [
        (E.CONNECT, S.CONNECTING, S.CONNECTING),
        (E.BOUND, None, S.BOUND),
        (E.SLOW_DOWN, None, S.THROTTLED),
        (E.GO_ON, None, S.BOUND),
        (E.CONNECT, S.RECONNECTING, S.RECONNECTING),
        (E.SLOW_DOWN, None, S.RECONNECTING),  # no pause for a bind not bound
        (E.REFUSED, None, S.REFUSED),
        (E.STOPPED, None, S.CLOSED),
        (E.BOUND, None, S.CLOSED),  # stopped is the end
    ]:
        state = next_state(state, event, to=to)
        assert state is expected, (event, state)


@given(st.sampled_from(BindState), st.sampled_from(BindEvent))
def test_no_event_moves_a_bind_to_a_state_only_the_pool_names(state: BindState, event: BindEvent) -> None:
    assert next_state(state, event) not in (S.MISSING, S.UNPLACED, S.UNREACHABLE) or state is next_state(
        state, event
    )


def test_up_and_down_do_not_overlap() -> None:
    assert not UP & DOWN
    assert S.CONNECTING not in UP | DOWN  # on its way: neither
