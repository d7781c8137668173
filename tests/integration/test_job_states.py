"""A job's state machine: the transition table (``cluster.jobs.states``) applied by the store's atomic
script in a real Redis, against a model written from the diagram in that module's docstring."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cluster.jobs.options import JobOptions
from cluster.jobs.states import (
    MOVES,
    TERMINAL,
    InvalidTransition,
    JobEvent,
    JobState,
    actions,
    resumed_state,
)
from cluster.jobs.store import JobStore

S = JobState
# The diagram, edge by edge: (from, event) -> to. Resume goes back where the job was paused from.
EDGES = {
    (S.QUEUED, JobEvent.INGEST): S.INGESTING,
    (S.INGESTING, JobEvent.PREPARED): S.SCHEDULED,
    (S.QUEUED, JobEvent.PREPARED): S.SCHEDULED,
    (S.INGESTING, JobEvent.NOTHING_TO_SEND): S.DONE,
    (S.PAUSED, JobEvent.NOTHING_TO_SEND): S.DONE,
    (S.SCHEDULED, JobEvent.WINDOW_OPENS): S.SENDING,
    (S.SENDING, JobEvent.WINDOW_CLOSES): S.SCHEDULED,
    (S.SENDING, JobEvent.ALL_HANDED): S.DRAINING,
    (S.DRAINING, JobEvent.PARTS_LEFT): S.SENDING,
    (S.DRAINING, JobEvent.SETTLED): S.DONE,
    **{(s, JobEvent.PAUSE): S.PAUSED for s in (S.QUEUED, S.INGESTING, S.SCHEDULED, S.SENDING)},
    **{(s, JobEvent.CANCEL): S.CANCELLING for s in (S.QUEUED, S.INGESTING, S.SCHEDULED, S.SENDING, S.PAUSED)},
    (S.CANCELLING, JobEvent.CANCELLED): S.CANCELLED,
    **{(s, JobEvent.FAIL): S.FAILED for s in S if s not in (S.DONE, S.FAILED, S.CANCELLED)},
}


class JobStates(RuleBasedStateMachine):
    client: redis.Redis
    root: Path

    @initialize()
    def create(self) -> None:
        self.store = JobStore(self.client)
        self.job = f"states-{uuid.uuid4().hex[:8]}"
        self.store.create(self.job, options=JobOptions(template="x"), source="t", directory=self.root)
        self.state = S.QUEUED
        self.paused_from: JobState | None = None
        self.pauses = 0
        self.entered = [S.QUEUED]

    def _expect(self, event: JobEvent) -> JobState | None:
        if event is JobEvent.RESUME:
            return resumed_state(self.paused_from) if self.state is S.PAUSED else None
        return EDGES.get((self.state, event))

    @rule(event=st.sampled_from(JobEvent))
    def apply(self, event: JobEvent) -> None:
        expected = self._expect(event)
        to = resumed_state(self.store.record(self.job).paused_from) if event is JobEvent.RESUME else None
        try:
            was = self.store.transition(self.job, event, to=to)
        except InvalidTransition as exc:
            assert expected is None, f"{event} from {self.state} was refused"
            assert exc.state == self.state
            return
        assert expected is not None, f"{event} from {self.state} was let through"
        assert was is self.state
        if event is JobEvent.PAUSE:
            self.paused_from, self.pauses = self.state, self.pauses + 1
        self.state = expected
        self.entered.append(expected)

    @invariant()
    def redis_agrees(self) -> None:
        if not hasattr(self, "job"):
            return
        record = self.store.record(self.job)
        assert record.state is self.state
        assert int(record.fields.get("pauses", 0)) == self.pauses
        assert [state for state, _ in record.history] == self.entered
        view = self.store.view(self.job)
        assert (view["state"], view["ended"]) == (self.state, self.state in TERMINAL)
        assert view["actions"] == actions(self.state)
        assert set(actions(self.state)) == {
            e.value for e in (JobEvent.PAUSE, JobEvent.RESUME, JobEvent.CANCEL) if self._expect(e) is not None
        }


def test_a_job_moves_only_as_its_table_says(redis_client: redis.Redis, tmp_path: Path) -> None:
    JobStates.client = redis_client
    JobStates.root = tmp_path
    JobStates.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
    JobStates.TestCase().runTest()


def test_the_table_is_the_diagram() -> None:
    table = {
        (source, event): target
        for event, (sources, targets) in MOVES.items()
        if event is not JobEvent.RESUME
        for source in sources
        for target in targets[:1]
    }
    assert table == EDGES
    assert all(state not in sources for state in TERMINAL for sources, _ in MOVES.values())
    assert actions(S.DRAINING) == [] and actions(S.CANCELLING) == []  # the web manager offered pause


def test_campaigns_and_previews_are_listed_apart(redis_client: redis.Redis, tmp_path: Path) -> None:
    """``ids(kind=)``: a user's sending jobs, previews (dry runs) and Ulak's own jobs each where they
    belong; ``ended_before(previews=True)`` (the purge after a day) finds previews only."""
    store = JobStore(redis_client)
    made = {}
    for name, options, automatic in (
        ("campaign", JobOptions(template="x"), False),
        ("preview", JobOptions(template="x", dry_run=True), False),
        ("followups", JobOptions(text_column="metin"), True),
    ):
        job_id = f"{name}-{uuid.uuid4().hex[:8]}"
        store.create(job_id, options=options, source=name, directory=tmp_path, automatic=automatic)
        made[name] = job_id
    for job_id in made.values():
        for event in (JobEvent.INGEST, JobEvent.NOTHING_TO_SEND):
            store.transition(job_id, event)
    mine = set(made.values())
    assert mine & set(store.ids(kind="campaigns", limit=500)) == {made["campaign"]}
    assert mine & set(store.ids(kind="previews", limit=500)) == {made["preview"]}
    assert mine <= set(store.ids(limit=500))
    later = 2e10
    assert mine & set(store.ended_before(later, previews=True)) == {made["preview"]}
    assert mine <= set(store.ended_before(later))
    for job_id in mine:
        store.delete(job_id)
