"""Split statistics, stickiness, pinning and table swaps: pure, no Ray."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from rayrollout.dataplane.routing import RoutingTable
from rayrollout.errors import ConfigError, NotFound


def binomial_ok(k: int, n: int, p: float, z: float = 4.0) -> bool:
    return abs(k - n * p) <= z * math.sqrt(n * p * (1 - p))


def table(weights: Mapping[str, float], **kw: Any) -> RoutingTable:
    return RoutingTable.from_percent("m", 0, weights, **kw)


def test_sticky_split_over_20000_keys_is_within_binomial_bounds() -> None:
    t = table({"stable": 90, "canary": 10})
    n = 20_000
    counts = Counter(t.choose(0.0, key=f"user-{i}").version for i in range(n))
    assert binomial_ok(counts["canary"], n, 0.10), counts
    assert counts["stable"] + counts["canary"] == n


def test_random_split_over_many_versions_matches_weights() -> None:
    t = table({"a": 50, "b": 30, "c": 15, "d": 5})
    rng = random.Random(7)
    n = 40_000
    counts = Counter(t.choose(rng.random()).version for _ in range(n))
    for v, pct in {"a": 0.5, "b": 0.3, "c": 0.15, "d": 0.05}.items():
        assert binomial_ok(counts[v], n, pct), (v, counts)


def test_random_choice_records_weight_and_is_randomised() -> None:
    t = table({"stable": 75, "canary": 25})
    c = t.choose(0.99)
    assert c.version == "canary" and c.weight == pytest.approx(0.25)
    assert c.randomised and c.unit == ""
    assert t.choose(0.0).version == "stable"


def test_sticky_key_is_stable_while_weights_unchanged() -> None:
    t = table({"stable": 60, "canary": 40})
    for i in range(500):
        key = f"k{i}"
        first = t.choose(0.1, key=key)
        assert all(t.choose(u, key=key).version == first.version for u in (0.0, 0.5, 0.99))
        assert not first.randomised and first.unit == key


def test_raising_canary_weight_only_moves_keys_toward_canary() -> None:
    keys = [f"user-{i}" for i in range(5_000)]
    steps = [1, 5, 25, 50, 100]
    prev = None
    for w in steps:
        weights = {"stable": 100 - w, "canary": w, "other": 0}
        t = table(weights) if w < 100 else table({"stable": 0, "canary": 100})
        now = {k: t.sticky(k) for k in keys}
        if prev is not None:
            moved = [k for k in keys if now[k] != prev[k]]
            assert moved, "raising the weight should move some keys"
            assert all(now[k] == "canary" for k in moved)
        prev = now


def test_three_way_raise_moves_keys_only_to_the_raised_version() -> None:
    keys = [f"s{i}" for i in range(5_000)]
    before = table({"a": 70, "b": 20, "c": 10})
    after = table({"a": 56, "b": 16, "c": 28})  # c raised, the others scaled down alike
    moved = [k for k in keys if before.sticky(k) != after.sticky(k)]
    assert moved and all(after.sticky(k) == "c" for k in moved)
    # In general: no key leaves a raised version and no key lands on a lowered one.
    mixed = table({"a": 60, "b": 20, "c": 20})
    moved = [k for k in keys if before.sticky(k) != mixed.sticky(k)]
    assert moved and all(before.sticky(k) != "c" and mixed.sticky(k) != "a" for k in moved)


def test_pin_reaches_weight_zero_and_shadow_versions_but_not_unknown() -> None:
    t = table({"stable": 100, "canary": 0}, shadow="shadowy", shadow_fraction=0.5)
    assert t.choose(0.5, pin="canary") == ("canary", 1.0, False, "")
    assert t.choose(0.5, pin="shadowy").version == "shadowy"
    with pytest.raises(NotFound, match="'ghost'"):
        t.choose(0.5, pin="ghost")
    assert all(t.choose(u / 100).version == "stable" for u in range(100))


def test_table_is_immutable_and_with_weights_bumps_epoch() -> None:
    t = table(
        {"stable": 90, "canary": 10}, shadow="s", shadow_fraction=0.2, flags={"canary": {"x": 1}}
    )
    with pytest.raises(AttributeError):
        t.epoch = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        t.weights["stable"] = 0.5  # type: ignore[index]
    t2 = t.with_weights({"stable": 50, "canary": 50})
    assert t2.epoch == 1 and t2.weights["canary"] == pytest.approx(0.5)
    assert t2.shadow == "s" and t2.flags["canary"] == {"x": 1}
    assert t.weights["canary"] == pytest.approx(0.1)  # the old table is untouched
    assert RoutingTable.from_dict(t2.to_dict()) == t2


def test_shadow_fraction_draw() -> None:
    t = table({"stable": 100}, shadow="s", shadow_fraction=0.25)
    rng = random.Random(3)
    n = 20_000
    k = sum(t.wants_shadow(rng.random()) for _ in range(n))
    assert binomial_ok(k, n, 0.25)
    assert not table({"stable": 100}).wants_shadow(0.0)


@pytest.mark.parametrize(
    "weights, match",
    [({}, "at least one"), ({"a": -1, "b": 2}, "finite and >= 0"), ({"a": 0}, "not all be 0")],
)
def test_bad_tables_are_rejected_naming_the_problem(weights: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        table(weights)
