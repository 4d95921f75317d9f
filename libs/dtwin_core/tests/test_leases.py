"""The heartbeat Lease the bridge writes, read back the way the operator reads it, and the liveness rule."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from dtwin_core import leases
from dtwin_core.leases import Health, Heartbeat

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def hb(renewed: datetime | None = NOW, duration: int | None = 30, holder: str = "r1") -> Heartbeat:
    return Heartbeat("ns", f"dtwin-bridge-hq-{holder}", "hq", holder, renewed, duration)


def test_body_is_a_lease_with_holder_duration_renew_time_and_labels() -> None:
    body = leases.lease_body("hq", "dtwin-bridge-hq-7d9f-abcde", "plant", 30, NOW)
    assert (body["apiVersion"], body["kind"]) == ("coordination.k8s.io/v1", "Lease")
    meta = body["metadata"]
    assert (meta["name"], meta["namespace"]) == ("dtwin-bridge-hq-dtwin-bridge-hq-7d9f-abcde", "plant")
    assert meta["labels"]["app.kubernetes.io/name"] == "dtwin-bridge"
    assert meta["labels"]["dtwin.io/site"] == "hq"
    assert meta["annotations"] == {}  # nothing known, nothing claimed
    assert "ownerReferences" not in meta
    assert body["spec"] == {
        "holderIdentity": "dtwin-bridge-hq-7d9f-abcde",
        "leaseDurationSeconds": 30,
        "renewTime": "2026-03-01T12:00:00.123456Z",
    }


def test_health_goes_into_annotations_and_reads_back() -> None:
    health = Health(connected=False, last_commit=NOW - timedelta(seconds=3), rows_committed=1234)
    body = leases.lease_body("hq", "r1", "ns", 30, NOW, health)
    assert body["metadata"]["annotations"] == {
        leases.CONNECTED: "false",
        leases.LAST_COMMIT: "2026-03-01T11:59:57.123456Z",
        leases.ROWS_COMMITTED: "1234",
    }
    back = leases.heartbeat_of(body)
    assert back == Heartbeat("ns", "dtwin-bridge-hq-r1", "hq", "r1", NOW, 30, health)


def test_a_pod_owner_is_referenced_only_with_name_and_uid() -> None:
    body = leases.lease_body("hq", "p", "ns", 30, NOW, owner={"name": "p", "uid": "u-1"})
    assert body["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u-1"}]
    assert (
        "ownerReferences" not in leases.lease_body("hq", "p", "ns", 30, NOW, owner={"name": "p", "uid": ""})["metadata"]
    )


@pytest.mark.parametrize("replica", ["embedded", "Host_Name.local", "x" * 300, "-weird-", "UPPER"])
def test_lease_names_are_dns_subdomains(replica: str) -> None:
    name = leases.lease_name("hq", replica)
    assert len(name) <= 253 and DNS_SUBDOMAIN.match(name), name


def test_rewritten_names_stay_distinct() -> None:
    assert leases.lease_name("hq", "embedded") == "dtwin-bridge-hq-embedded"
    assert leases.lease_name("hq", "A") != leases.lease_name("hq", "a")
    assert leases.lease_name("hq", "x" * 300 + "1") != leases.lease_name("hq", "x" * 300 + "2")


def test_live_until_renew_time_plus_duration() -> None:
    h = hb()
    assert leases.is_live(h, NOW)
    assert leases.is_live(h, NOW + timedelta(seconds=29.999))
    assert not leases.is_live(h, NOW + timedelta(seconds=30))
    assert leases.expires_at(h) == NOW + timedelta(seconds=30)


@pytest.mark.parametrize(("renewed", "duration"), [(None, 30), (NOW, None), (NOW, 0)])
def test_without_renew_time_or_duration_never_live(renewed: datetime | None, duration: int | None) -> None:
    assert not leases.is_live(hb(renewed, duration), NOW)
    assert leases.expires_at(hb(renewed, duration)) is None


def test_live_sorts_by_holder_and_next_expiry_is_the_soonest_future_one() -> None:
    hbs = [hb(NOW, 30, "b"), hb(NOW - timedelta(seconds=40), 30, "c"), hb(NOW - timedelta(seconds=10), 30, "a")]
    assert [h.holder for h in leases.live(hbs, NOW)] == ["a", "b"]
    assert leases.next_expiry(hbs, NOW) == NOW + timedelta(seconds=20)
    assert leases.next_expiry([hbs[1]], NOW) is None


def test_not_a_bridge_heartbeat() -> None:
    assert leases.heartbeat_of({"metadata": {"name": "node-1", "labels": {}}, "spec": {}}) is None
    other = {"metadata": {"labels": {leases.NAME_LABEL: "dtwin-bridge"}}, "spec": {}}
    assert leases.heartbeat_of(other) is None  # no site label


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00.123456Z", NOW),
        ("2026-03-01T12:00:00.123456789Z", NOW),  # nanoseconds are cut to micro
        ("2026-03-01T13:00:00.123456+01:00", NOW),
        ("2026-03-01T12:00:00Z", NOW.replace(microsecond=0)),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_times_parse_as_the_api_writes_them(text: str | None, expected: datetime | None) -> None:
    assert leases.parse_time(text) == expected


def test_malformed_annotations_are_unknown_not_errors() -> None:
    body = leases.lease_body("hq", "r1", "ns", 30, NOW)
    body["metadata"]["annotations"] = {leases.CONNECTED: "maybe", leases.ROWS_COMMITTED: "-1", leases.LAST_COMMIT: "x"}
    back = leases.heartbeat_of(body)
    assert back is not None and back.health == Health()


def test_selector_matches_the_labels() -> None:
    key_value, present = leases.selector().split(",")
    key, value = key_value.split("=")
    labels = leases.labels("hq")
    assert labels[key] == value and present in labels
