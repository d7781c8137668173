"""Prefix routing with number portability, over Arrow arrays."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ulak.dispatch.routing import Router, RoutingError, load_mnp_file, router_from_operators
from ulak.settings import BindConfig, OperatorConfig

BIND = BindConfig(name="b", host="127.0.0.1", port=2775, system_id="s", password_env="X")


def op(name: str, *prefixes: str, mnp_file: Path | None = None) -> OperatorConfig:
    return OperatorConfig(name=name, prefixes=prefixes, tps=10, binds=(BIND,), mnp_file=mnp_file)


def test_longest_prefix_wins() -> None:
    router = Router([op("broad", "9053"), op("narrow", "905321"), op("other", "9054")])
    numbers = pa.array(["905321000000", "905330000000", "905400000000", "447700900000", None])
    assert router.route(numbers).to_pylist() == [1, 0, 2, None, None]
    assert router.route_names(numbers).to_pylist() == ["narrow", "broad", "other", None, None]


def test_number_portability_overrides_prefixes() -> None:
    router = Router([op("a", "90532"), op("b", "90542")], mnp={"905321111111": "b"})
    assert router.route(pa.array(["905321111111", "905321111112"])).to_pylist() == [1, 0]


def test_chunked_arrays_route_whole() -> None:
    router = Router([op("a", "90")])
    chunked = pa.chunked_array([["9053"], ["4477", "9054"]])
    assert router.route(chunked).to_pylist() == [0, None, 0]


def test_numbers_must_be_strings() -> None:
    with pytest.raises(TypeError, match="strings"):
        Router([op("a", "90")]).route(pa.array([905321234567]))


def test_conflicting_prefix_is_a_config_error() -> None:
    with pytest.raises(RoutingError, match="claimed by both a and b"):
        Router([op("a", "90532"), op("b", "90532")])


def test_mnp_file(tmp_path: Path) -> None:
    path = tmp_path / "mnp.csv"
    path.write_text("number,operator\n+905321111111,b\n905329999999,a\n")
    assert load_mnp_file(path) == {"905321111111": "b", "905329999999": "a"}
    router = router_from_operators([op("a", "90532", mnp_file=path), op("b", "90542")])
    assert router.route(pa.array(["905321111111"])).to_pylist() == [1]


def test_mnp_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "mnp.csv"
    path.write_text("905321111111,a\nnot-a-number,a\n")
    with pytest.raises(RoutingError, match=r"mnp.csv:2"):
        load_mnp_file(path)


def test_mnp_naming_unknown_operator() -> None:
    with pytest.raises(RoutingError, match="unknown operators"):
        Router([op("a", "90")], mnp={"905321111111": "zz"})


def test_a_million_rows_route_in_one_pass() -> None:
    router = Router([op("tcell", "90530", "90532", "90533"), op("voda", "90542", "90543")])
    numbers = pa.array([f"9053{i % 4}{i:07d}" for i in range(1_000_000)])
    routed = router.route(numbers)
    assert len(routed) == 1_000_000
    assert routed.null_count == 250_000  # 90531… belongs to no operator here


@settings(max_examples=200, deadline=None)
@given(
    prefixes=st.lists(st.text("0123456789", min_size=1, max_size=6), min_size=1, max_size=12, unique=True),
    numbers=st.lists(st.one_of(st.none(), st.text("0123456789", max_size=12)), max_size=30),
)
def test_each_number_goes_to_the_operator_of_its_longest_prefix(
    prefixes: list[str], numbers: list[str | None]
) -> None:
    operators = [op(f"op{i}", p) for i, p in enumerate(prefixes)]
    expected = []
    for number in numbers:
        matches = [i for i, p in enumerate(prefixes) if number is not None and number.startswith(p)]
        expected.append(max(matches, key=lambda i: len(prefixes[i])) if matches else None)
    assert Router(operators).route(pa.array(numbers, pa.string())).to_pylist() == expected


def test_a_number_ported_to_an_operator_the_job_does_not_allow_routes_nowhere(tmp_path: Path) -> None:
    """Job allows only "a"; the MNP file says 905321111111 went to "b": refused, not an error (issue
    14: it raised RoutingError after the 202 and the job failed internal_error), and not sent to "a"
    by its old prefix."""
    path = tmp_path / "mnp.csv"
    path.write_text("905321111111,b\n905421111111,a\n")
    a, b = op("a", "90532", mnp_file=path), op("b", "90542")
    router = router_from_operators([a], configured=[a, b])
    assert router.route(pa.array(["905321111111", "905321111112", "905421111111"])).to_pylist() == [
        None,
        0,
        0,
    ]
