"""Fuzzing parse() with 10,000 payloads per format: about half arbitrary bytes drawn by hypothesis, half built
from a hypothesis-drawn seed — valid payloads, and valid payloads mutated in structure (nasty values, dropped,
added and duplicated keys, odd timestamps, wrong types and datatypes) or in bytes (truncated, flipped,
spliced). Nothing may raise; every output is a Reading or a Reject with a reason from the closed set (never
`parser_error`); every message yields at least one item; valid payloads round-trip exactly (values in
canonical units, timestamps equal). Structured payloads come from a seeded `random.Random` rather than
composite strategies, which cost ~5 ms per example: this keeps 30,000 cases near 30 s. `derandomize=True`
makes every run see the same payloads; a failure prints the payload (it is part of the drawn case)."""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dtwin_bridge.model import Reading, Reason, Reject, Route, RoutingTable
from dtwin_bridge.parse import parse
from dtwin_bridge.parse import sparkplug as spb
from dtwin_bridge.parse.senml import SENML_UNITS
from dtwin_bridge.parse.sparkplug import DataType, Metric
from dtwin_bridge.validate import Limits
from dtwin_core import units

NOW = datetime(2025, 7, 13, 10, 0, 5, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
LIMITS = Limits()
FUZZ = settings(
    max_examples=10_000, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
Case = tuple[bytes, list[Reading] | None]


def _routes(fmt: str, topic: str, fields: list[str], first: int) -> tuple[Route, ...]:
    """Routes cycling through every unit; every third has no validRange."""
    out = []
    for i, field in enumerate(fields):
        unit = units.UNITS[(first + i) % len(units.UNITS)]
        vr = None if i % 3 == 2 else (-50.0 - i, 1000.0 * (i + 1))
        out.append(Route(f"{fmt}-{i}", "asset", f"m{i}", topic, fmt, field, unit, vr))
    return tuple(out)


JSON_ROUTES = _routes(
    "json",
    "fuzz/json",
    ["temperature", "supply.temp", "a.b.c", "fan.speed", "h", "x.y", "p", "q.r", "s", "t.u", "v"],
    0,
)
SENML_ROUTES = _routes("senml", "fuzz/senml", [f"dev_{i}_value" for i in range(10)], 11)
SPB_ROUTES = _routes("sparkplugb", "fuzz/spb", [f"Folder/Metric{i}" for i in range(10)], 21)
TABLE = RoutingTable(JSON_ROUTES + SENML_ROUTES + SPB_ROUTES)
SENSORS = {topic: {r.sensor: r for r in TABLE.on_topic(topic)} for topic in TABLE.topics}


def check(topic: str, payload: bytes, expected: list[Reading] | None) -> None:
    """The invariants of every message, and exact equality when the payload was generated valid."""
    out = parse(topic, payload, TABLE, NOW, LIMITS)
    assert out, "every message yields at least one item"
    for item in out:
        if isinstance(item, Reject):
            event(f"reject: {item.reason.value}")
            assert isinstance(item.reason, Reason) and item.reason != Reason.PARSER_ERROR, item
            assert item.topic == topic and item.payload == payload and item.detail
            assert item.sensor is None or item.sensor in SENSORS[topic]
        else:
            assert type(item) is Reading
            route = SENSORS[topic][item.sensor]
            assert math.isfinite(item.value) and item.ts.utcoffset() == timedelta(0)
            assert NOW - LIMITS.max_age <= item.ts <= NOW + LIMITS.max_skew
            if route.valid_range:
                lo, hi = sorted(units.to_canonical(v, route.unit) for v in route.valid_range)
                assert lo - 1e-9 * abs(lo) <= item.value <= hi + 1e-9 * abs(hi)
    if expected is not None:
        assert out == expected


def cases(junk: st.SearchStrategy[bytes], structured: Callable[[random.Random], Case]) -> st.SearchStrategy[Case]:
    return st.one_of(junk.map(lambda b: (b, None)), st.randoms(use_true_random=True).map(structured))


# -- values, times and mutations ------------------------------------------------------------------------------

INTERESTING: list[Any] = [
    None, True, False, 0, -1, 1, -0.0, 2**31, 2**63, -(2**64), 2**70, 10**30, 1e308, -1e308, 5e-324,
    math.nan, math.inf, -math.inf, "", "21.5", "NaN", "é\u0000", "2025-07-13T10:00:00", "2025-13-01T00:00:00Z",
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00+01:00", "2025-07-13T10:00:00Z", 2**28, 2**28 - 1, 1e11,
    1e20, -1e20, NOW_MS // 1000, NOW_MS, [], {}, [1, "a"], {"v": 1}, {"n": "x"},
]  # fmt: skip
KEYS = ["n", "v", "t", "u", "s", "vb", "vs", "vd", "bn", "bt", "bu", "bv", "bs", "bver", "ut", "x_", "ts", "time"]


def nasty(rnd: random.Random) -> Any:
    pick = rnd.random()
    if pick < 0.6:
        return copy.deepcopy(rnd.choice(INTERESTING))  # a copy: mutate_tree edits lists and dicts in place
    if pick < 0.8:
        return rnd.uniform(-1e12, 1e12)
    return "".join(chr(rnd.randint(0, 0x2FF)) for _ in range(rnd.randint(0, 8)))


NUMBERS = [x for x in INTERESTING if isinstance(x, int | float) and not isinstance(x, bool)]
STRINGS = [x for x in INTERESTING if isinstance(x, str)] + ["Cel", "degF", "kPa", "%RH", "g", "l/s", "urn:x:", "dev_1_"]


def same_type(rnd: random.Random, old: Any) -> Any:
    """A nasty value of the old one's JSON type, so the structure stays valid and the checks behind it run."""
    if isinstance(old, bool):
        return not old
    if isinstance(old, int | float):
        return rnd.choice([rnd.choice(NUMBERS), rnd.uniform(-1e10, 1e10), old * rnd.choice([-1, 1000, 1e-3])])
    if isinstance(old, str):
        return rnd.choice([*STRINGS, old[:-1], old + "_", old.upper()])
    return nasty(rnd)


def value(rnd: random.Random, route: Route) -> Any:
    """A valid value in the route's own unit, biased to the range's edges."""
    if route.unit == "bool":
        return rnd.choice([True, False, 0, 1])
    lo, hi = route.valid_range or (-1e6, 1e6)
    pick = rnd.random()
    if pick < 0.15:
        return rnd.choice([lo, hi, 0.0, -0.0, 0])
    if pick < 0.45:
        return rnd.randint(math.ceil(lo), math.floor(hi))
    return min(max(rnd.uniform(lo, hi), lo), hi)


def offset_ms(rnd: random.Random) -> int:
    """A time inside the accepted window, relative to NOW, biased to its edges."""
    lo, hi = -(7 * 86_400 - 1) * 1000, (5 * 60 - 1) * 1000
    return rnd.choice([lo, hi, 0, rnd.randint(lo, hi), rnd.randint(lo, hi)])


def reading(route: Route, ts: datetime, raw: Any) -> Reading:
    return Reading(route.sensor, ts, units.to_canonical(float(raw), route.unit))


def mutate_tree(rnd: random.Random, doc: Any) -> Any:
    """A copy of a JSON document with one to three edits anywhere in it: replace, delete or add."""
    doc = copy.deepcopy(doc)
    for _ in range(rnd.randint(1, 3)):
        slots: list[tuple[Any, Any]] = []
        stack = [doc]
        while stack:
            node = stack.pop()
            for key in list(node) if isinstance(node, dict) else range(len(node)):
                slots.append((node, key))
                if isinstance(node[key], dict | list):
                    stack.append(node[key])
        op = rnd.choice(["tweak", "tweak", "replace", "delete", "add"]) if slots else "add"
        if op == "add":
            containers = [doc] + [n[k] for n, k in slots if isinstance(n[k], dict | list)]
            target = rnd.choice(containers)
            if isinstance(target, list):
                target.insert(rnd.randint(0, len(target)), nasty(rnd))
            else:
                target[rnd.choice(KEYS + [r.field for r in JSON_ROUTES])] = nasty(rnd)
        else:
            node, key = rnd.choice(slots)
            if op == "delete":
                del node[key]
            else:
                node[key] = same_type(rnd, node[key]) if op == "tweak" else nasty(rnd)
    return doc


def mutate_bytes(rnd: random.Random, data: bytes) -> bytes:
    i = rnd.randint(0, len(data))
    op = rnd.choice(["truncate", "flip", "insert", "splice"])
    if op == "truncate":
        return data[:i]
    if op == "flip" and data:
        i = min(i, len(data) - 1)
        return data[:i] + bytes([data[i] ^ rnd.randint(1, 255)]) + data[i + 1 :]
    cut = 4 if op == "splice" else 0  # splice overwrites, insert shifts
    return data[:i] + rnd.randbytes(rnd.randint(1, 8)) + data[i + cut :]


def structured(rnd: random.Random, valid: tuple[Any, list[Reading]], encode: Callable[[Any], bytes]) -> Case:
    """The valid payload itself, or one mutated in structure or in bytes."""
    doc, expected = valid
    kind = rnd.choice(["valid", "valid", "tree", "tree", "bytes"])
    event(f"case: {kind}")
    if kind == "valid":
        return encode(doc), expected
    if kind == "tree":
        return encode(mutate_tree(rnd, doc)), None
    return mutate_bytes(rnd, encode(doc)), None


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()  # NaN and Infinity go out as the tokens Python's json reads back


# -- JSON ------------------------------------------------------------------------------------------------------


def json_stamp(rnd: random.Random) -> tuple[str | None, Any, datetime]:
    key = rnd.choice(["timestamp", "ts", "time"])
    us = offset_ms(rnd) * 1000 + rnd.randint(0, 999)
    ts = NOW + timedelta(microseconds=us)
    whole = math.floor(ts.timestamp())
    ms = NOW_MS + us // 1000
    return rnd.choice(
        [
            (None, None, NOW),
            (key, ts.isoformat().replace("+00:00", "Z"), ts),
            (key, ts.astimezone(timezone(timedelta(minutes=rnd.randint(-720, 840)))).isoformat(), ts),
            (key, whole, datetime.fromtimestamp(whole, UTC)),
            (key, float(f"{whole}.{ts.microsecond:06d}"), ts),
            (key, ms, datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)),
        ]
    )


def put(doc: dict[str, Any], path: str, raw: Any, literal: bool) -> None:
    if literal or "." not in path:
        doc[path] = raw
        return
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = raw


def valid_json(rnd: random.Random) -> tuple[dict[str, Any], list[Reading]]:
    key, stamp, ts = json_stamp(rnd)
    doc: dict[str, Any] = {"asset_id": "fuzz"} if rnd.random() < 0.5 else {}
    if key is not None:
        doc[key] = stamp
    expected = []
    for route in JSON_ROUTES:
        raw = value(rnd, route)
        put(doc, route.field, raw, literal=rnd.random() < 0.3)
        expected.append(reading(route, ts, raw))
    return doc, expected


def json_case(rnd: random.Random) -> Case:
    if rnd.random() < 0.1:  # a key twice: text-level, as no dict can hold it
        doc, _ = valid_json(rnd)
        key = rnd.choice([r.field.split(".")[0] for r in JSON_ROUTES] + ["ts"])
        return b'{"%s": %s, ' % (key.encode(), dumps(nasty(rnd))) + dumps(doc)[1:], None
    return structured(rnd, valid_json(rnd), dumps)


@FUZZ
@given(case=cases(st.binary(max_size=300), json_case))
def test_fuzz_json(case: Case) -> None:
    check("fuzz/json", *case)


# -- SenML -----------------------------------------------------------------------------------------------------

SENML_NAME = {ours: senml for senml, ours in SENML_UNITS.items()}


def senml_name(rnd: random.Random, rec: dict[str, Any], bn: str, field: str) -> str:
    """Sets n (and maybe a new bn) on `rec` so that the record resolves to `field`; returns the bn in force."""
    if not field.startswith(bn) or rnd.random() < 0.3:
        bn = rnd.choice(["", "urn:dev:fuzz:", field[: rnd.randint(1, len(field))]])
        rec["bn"] = bn
    own = field if bn.startswith("urn:") else field[len(bn) :]
    if own:
        rec["n"] = own
    return bn


def valid_senml(rnd: random.Random) -> tuple[list[dict[str, Any]], list[Reading]]:
    base_s = None if rnd.random() < 0.5 else NOW_MS // 1000 - rnd.randint(0, 86_400)
    pack: list[dict[str, Any]] = []
    expected, seen, bn = [], set(), ""
    for _ in range(rnd.randint(1, 8)):
        route, ms = rnd.choice(SENML_ROUTES), offset_ms(rnd)
        ts = NOW + timedelta(milliseconds=ms)
        if (route.sensor, ts) in seen:
            continue
        seen.add((route.sensor, ts))
        rec: dict[str, Any] = {"bt": base_s} if base_s is not None and not pack else {}
        bn = senml_name(rnd, rec, bn, route.field)
        if base_s is not None:
            rec["t"] = (NOW_MS + ms - base_s * 1000) / 1000
        else:
            rec["t"] = ms / 1000 if rnd.random() < 0.5 else (NOW_MS + ms) / 1000  # relative or absolute
        raw = value(rnd, route)
        rec["vb" if isinstance(raw, bool) else "v"] = raw
        if route.unit in SENML_NAME and rnd.random() < 0.5:
            rec["u"] = SENML_NAME[route.unit]
        pack.append(rec)
        expected.append(reading(route, ts, raw))
        if rnd.random() < 0.2:
            pack.append({"n": "unbound_thing", "v": 1})  # ignored: bound to nothing
    return pack, expected


@FUZZ
@given(case=cases(st.binary(max_size=300), lambda rnd: structured(rnd, valid_senml(rnd), dumps)))
def test_fuzz_senml(case: Case) -> None:
    check("fuzz/senml", *case)


# -- Sparkplug B -----------------------------------------------------------------------------------------------


def spb_metric(rnd: random.Random, route: Route, own_ms: int | None) -> tuple[Metric, Any]:
    raw = value(rnd, route)
    stamp = None if own_ms is None else NOW_MS + own_ms
    if isinstance(raw, bool):
        return Metric(route.field, raw, DataType.BOOLEAN, stamp), raw
    if isinstance(raw, float):
        if rnd.random() < 0.5:
            raw = float(spb.Payload.Metric(float_value=raw).float_value)  # as a float32 sensor would send it
            return Metric(route.field, raw, DataType.FLOAT, stamp), raw
        return Metric(route.field, raw, DataType.DOUBLE, stamp), raw
    fits = (
        [DataType.INT64, DataType.INT32]
        + [DataType.INT8] * (-128 <= raw <= 127)
        + [DataType.UINT16] * (0 <= raw < 2**16)
    )
    return Metric(route.field, raw, rnd.choice(fits), stamp), raw


def valid_spb(rnd: random.Random) -> tuple[tuple[int | None, list[Metric]], list[Reading]]:
    payload_ms = None if rnd.random() < 0.3 else offset_ms(rnd)
    metrics, expected, seen = [], [], set()
    for _ in range(rnd.randint(1, 8)):
        route = rnd.choice(SPB_ROUTES)
        own_ms = None if rnd.random() < 0.4 else offset_ms(rnd)
        ms = own_ms if own_ms is not None else payload_ms
        ts = NOW if ms is None else NOW + timedelta(milliseconds=ms)
        if (route.sensor, ts) in seen:
            continue
        seen.add((route.sensor, ts))
        metric, raw = spb_metric(rnd, route, own_ms)
        metrics.append(metric)
        expected.append(reading(route, ts, raw))
        if rnd.random() < 0.2:
            metrics.append(Metric(None, 1.0, alias=rnd.randint(0, 2**64 - 1)))  # alias only: cannot be bound
    return (payload_ms, metrics), expected


def encode_spb(doc: tuple[int | None, list[Metric]]) -> bytes:
    payload_ms, metrics = doc
    return spb.encode(metrics, timestamp_ms=None if payload_ms is None else NOW_MS + payload_ms)


WIRE: dict[str, Callable[[random.Random], Any]] = {
    "name": lambda rnd: rnd.choice([r.field for r in SPB_ROUTES] + ["", "x", "Folder/Metric"]),
    "alias": lambda rnd: rnd.choice([0, 2**64 - 1, rnd.randint(0, 2**64 - 1)]),
    "timestamp": lambda rnd: rnd.choice([0, 1, 2**63, 2**64 - 1, NOW_MS, NOW_MS + 10**9, rnd.randint(0, 2**64 - 1)]),
    "datatype": lambda rnd: rnd.choice([0, 35, 2**32 - 1, *DataType]),
    "is_null": lambda rnd: rnd.random() < 0.5,
    "int_value": lambda rnd: rnd.choice([0, 2**31, 2**32 - 1, rnd.randint(0, 2**32 - 1)]),
    "long_value": lambda rnd: rnd.choice([0, 2**63, 2**64 - 1, rnd.randint(0, 2**64 - 1)]),
    "float_value": lambda rnd: rnd.choice([math.nan, math.inf, -math.inf, 3.4e38, rnd.uniform(-1e6, 1e6)]),
    "double_value": lambda rnd: rnd.choice([math.nan, -math.inf, 1e308, -0.0, rnd.uniform(-1e12, 1e12)]),
    "boolean_value": lambda rnd: rnd.random() < 0.5,
    "string_value": lambda rnd: rnd.choice(["", "12.5", "on"]),
    "bytes_value": lambda rnd: rnd.randbytes(rnd.randint(0, 6)),
}


def mutate_proto(rnd: random.Random, data: bytes) -> bytes:
    """The decoded payload with random wire-typed fields set on or cleared from its metrics, and maybe more metrics."""
    payload = spb.Payload.FromString(data)
    for _ in range(rnd.randint(0, 2)):
        payload.metrics.add()
    for _ in range(rnd.randint(1, 4)):
        metric = rnd.choice(payload.metrics)
        field = rnd.choice(list(WIRE))
        if rnd.random() < 0.2:
            metric.ClearField(field)
        else:
            setattr(metric, field, WIRE[field](rnd))
    if rnd.random() < 0.2:
        payload.timestamp = WIRE["timestamp"](rnd)
    return bytes(payload.SerializeToString())


def spb_case(rnd: random.Random) -> Case:
    doc, expected = valid_spb(rnd)
    kind = rnd.choice(["valid", "valid", "proto", "proto", "bytes"])
    event(f"case: {kind}")
    if kind == "valid":
        return encode_spb(doc), expected
    if kind == "proto":
        return mutate_proto(rnd, encode_spb(doc)), None
    return mutate_bytes(rnd, encode_spb(doc)), None


@FUZZ
@given(case=cases(st.binary(max_size=300), spb_case))
def test_fuzz_sparkplug(case: Case) -> None:
    check("fuzz/spb", *case)
