"""The key layout that lets Ulak run on a Redis Cluster, and how a cluster is named.

On a cluster a Lua script or a MULTI may touch only one hash slot. These check, without a server,
that every key one ledger call touches is in its operator's slot whatever the jobs and ids in it,
that a job's own keys share the job's slot (the API's MULTI), and that different operators can land
on different slots (the spread a cluster is for). ``tests/integration/test_redis_cluster.py`` runs a
campaign on a real 3-master cluster.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from ulak import keys
from ulak.dispatch.ledger import PartAcked, ReceiptSeen, RedisLedger
from ulak.redisclient import _cluster_options, cluster_url, is_cluster
from ulak.settings import BindConfig, OperatorConfig, RedisConfig, Settings

names = st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True)
ids = st.text(st.characters(codec="ascii", exclude_characters="\x00"), min_size=1, max_size=30)


class _Scripts:
    def register_script(self, script: str) -> object:
        return object()


def _slot(key: str) -> int:
    return key_slot(key.encode())


@given(operator=names, jobs=st.lists(ids, min_size=1, max_size=4), bind=names, smsc=ids, mid=ids)
def test_every_key_of_a_ledger_call_is_in_its_operators_slot(
    operator: str, jobs: list[str], bind: str, smsc: str, mid: str
) -> None:
    ledger = RedisLedger(_Scripts(), ledger=operator)
    events = [PartAcked(job, 1, 1, 1, smsc, mid) for job in jobs] + [ReceiptSeen(smsc, mid, "DELIVRD")]
    inbox, fence = keys.bind_inbox(bind, bind, ledger=operator), keys.bind_fence(bind, bind, ledger=operator)
    args = ledger._args(events, inbox, (fence, "1:1", "1:2"))
    templates = [str(a) for a in args[:2]]
    named = [
        *(t % job for t in templates for job in jobs),
        *(str(a) for a in args[2:5]),
        *map(str, args[7:13]),
    ]
    prefix, early = str(args[2]), str(args[3])
    bucket = keys.message_id_bucket(mid)
    suffix = keys.message_ids_suffix(smsc, bucket)
    named += [prefix + f"20000:{suffix}", early + keys.message_id_field(smsc, mid)]
    named += [keys.message_ids(operator, 20000, smsc, bucket), keys.early_receipt(operator, smsc, mid)]
    named += [keys.message_id_jobs(operator)]
    named += [
        keys.bind_records(bind, bind, ledger=operator),
        keys.bind_sends(bind, bind, "a", ledger=operator),
    ]
    slot = _slot(keys.receipt_stats(operator))
    assert {_slot(k) for k in named if k.startswith("ulak:")} == {slot}
    # the script's keys are the module's
    assert prefix + f"20000:{suffix}" == keys.message_ids(operator, 20000, smsc, bucket)
    assert early + keys.message_id_field(smsc, mid) == keys.early_receipt(operator, smsc, mid)
    assert prefix + "jobs" == keys.message_id_jobs(operator)


@given(job=ids)
def test_a_jobs_own_keys_share_one_slot(job: str) -> None:
    own = [keys.job(job), keys.job_counters(job), keys.job_samples(job), keys.job_results(job)]
    if not job.startswith("}"):  # an empty tag hashes the whole key (the API's ids are hex)
        assert len({_slot(k) for k in own}) == 1


def test_operators_spread_over_slots() -> None:
    slots = {_slot(keys.receipt_stats(f"op{i}")) for i in range(20)}
    assert len(slots) == 20


def test_cluster_urls() -> None:
    url = cluster_url(["10.0.0.1:6379", "10.0.0.2:7000"], password="p@ss")
    assert is_cluster(url) and not is_cluster("redis://10.0.0.1:6379/0")
    nodes, options = _cluster_options("rediss+cluster://u:p%40ss@10.0.0.1:6379,10.0.0.2")
    assert nodes == [("10.0.0.1", 6379), ("10.0.0.2", 6379)]
    assert options == {"ssl": True, "username": "u", "password": "p@ss"}
    with pytest.raises(ValueError, match="host:port"):
        _cluster_options("redis+cluster://:x@,10.0.0.2:6379")


def test_redis_config_names_a_cluster_one_way() -> None:
    assert RedisConfig(cluster_nodes=("a:1", "b:2")).url == "redis+cluster://a:1,b:2"
    assert RedisConfig.model_validate({"cluster_nodes": "a:1, b:2"}).url == "redis+cluster://a:1,b:2"
    with pytest.raises(ValueError, match="set one of them"):
        RedisConfig(url="redis://x:6379/0", cluster_nodes=("a:1",))


def _op(name: str, host: str, system_id: str, ledger: str = "") -> OperatorConfig:
    bind = BindConfig(name="b1", host=host, port=2775, system_id=system_id, password_env="X")
    return OperatorConfig(name=name, prefixes=("90",), tps=10, binds=(bind,), ledger=ledger)


def test_operators_sharing_an_smsc_account_share_a_ledger() -> None:
    # Receipts for one's messages may come back on the other's binds: one message-id map, one slot.
    settings = Settings(
        operators=(
            _op("voda", "smsc.example", "acme"),
            _op("tcell", "SMSC.example", "acme"),  # the same account, the host written otherwise
            _op("ttnet", "other.example", "acme"),
            _op("kktc", "third.example", "x", ledger="ttnet"),  # named: joins ttnet's
        )
    )
    assert {op.name: op.ledger_name for op in settings.operators} == {
        "voda": "tcell",
        "tcell": "tcell",
        "ttnet": "ttnet",
        "kktc": "ttnet",
    }
    alone = _op("solo", "smsc.example", "acme")
    assert alone.ledger == "" and alone.ledger_name == "solo"  # configured alone: its own
