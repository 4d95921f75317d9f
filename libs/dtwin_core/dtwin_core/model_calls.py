"""Per-version call statistics of a ModelDeployment, as its callers report them, and the canary verdict.

Every caller of a model (one scorer replica, one embedded data plane) keeps one coordination.k8s.io/v1 Lease
`dtwin-model-<name>-calls-<reporter>` labelled `dtwin.io/model=<name>` in the ModelDeployment's namespace, and
writes its counters into the Lease's annotations (`encode`): for the stable and the canary version it called,
the version, the calls made, how many of them failed, and the sum of the scores the successful ones returned.
Counters are cumulative since the reporter started calling that version; a reporter that switches to another
version starts that version's counters at zero. The operator reads every Lease of the model (`decode`), adds
the counters up per version across reporters (`aggregate`), and decides whether the canary may go on
(`verdict`). The operator also tidies them: it makes the ModelDeployment an owner of each (so they go with
it) and deletes those that report only versions the model no longer serves (`outdated`), such as the Leases of
scorer pods replaced long ago. A Lease rather than a status field or a metric: each reporter writes only its
own object (no conflicts between replicas), RBAC can grant exactly that, and the operator needs no metrics stack.

Both sides import this module, so what the reporters write and what the operator reads cannot drift apart.
Pure: no client, no clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

API_VERSION = "coordination.k8s.io/v1"
MODEL_LABEL = "dtwin.io/model"  # same key as dtwin_operator.labels.MODEL
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "model-calls"
TRACKS = ("stable", "canary")
_PREFIX = "dtwin.io"
_FIELDS = ("version", "calls", "errors", "score-sum")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def key(track: str, field: str) -> str:
    """Annotation key of one counter, e.g. `dtwin.io/canary-errors`."""
    return f"{_PREFIX}/{track}-{field}"


ANNOTATIONS = tuple(key(t, f) for t in TRACKS for f in _FIELDS)


@dataclass(frozen=True)
class CallStats:
    """What one reporter (or, once aggregated, every reporter) saw of one model version."""

    version: str
    calls: int = 0
    errors: int = 0  # calls that failed (HTTP error, timeout, invalid answer); they return no score
    score_sum: float = 0.0  # sum of the scores the successful calls returned

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def mean_score(self) -> float | None:
        """Mean score of the successful calls (failed calls have none)."""
        ok = self.calls - self.errors
        return self.score_sum / ok if ok > 0 else None

    def __add__(self, other: CallStats) -> CallStats:
        if other.version != self.version:
            raise ValueError(f"cannot add calls of version {other.version!r} to version {self.version!r}")
        return CallStats(
            self.version, self.calls + other.calls, self.errors + other.errors, self.score_sum + other.score_sum
        )


def lease_name(model: str, reporter: str) -> str:
    """`dtwin-model-<model>-calls-<reporter>`, the reporter part made DNS-safe (lowercase, digits, '-')."""
    safe = _NOT_DNS.sub("-", reporter.lower()).strip("-") or "reporter"
    return f"dtwin-model-{model}-calls-{safe}"[:253].rstrip("-")


def labels(model: str) -> dict[str, str]:
    return {MODEL_LABEL: model, COMPONENT_LABEL: COMPONENT, "app.kubernetes.io/part-of": "dtwin"}


def selector(model: str) -> str:
    """Label selector of every calls Lease of one ModelDeployment."""
    return f"{MODEL_LABEL}={model},{COMPONENT_LABEL}={COMPONENT}"


def encode(stable: CallStats | None, canary: CallStats | None) -> dict[str, str]:
    """The Lease annotations for what a reporter saw; a track it did not call is left out."""
    out: dict[str, str] = {}
    for track, stats in zip(TRACKS, (stable, canary), strict=True):
        if stats is None:
            continue
        out[key(track, "version")] = stats.version
        out[key(track, "calls")] = str(stats.calls)
        out[key(track, "errors")] = str(stats.errors)
        out[key(track, "score-sum")] = repr(float(stats.score_sum))
    return out


def _track(annotations: Mapping[str, str], track: str) -> CallStats | None:
    version = annotations.get(key(track, "version"))
    if not version:
        return None
    try:
        calls = int(annotations.get(key(track, "calls"), "0"))
        errors = int(annotations.get(key(track, "errors"), "0"))
        score_sum = float(annotations.get(key(track, "score-sum"), "0"))
    except ValueError:
        return None  # a malformed counter is no evidence either way
    if calls < 0 or not 0 <= errors <= calls or not math.isfinite(score_sum):
        return None
    return CallStats(version, calls, errors, score_sum)


def decode(annotations: Mapping[str, str] | None) -> tuple[CallStats | None, CallStats | None]:
    """(stable, canary) from a Lease's annotations; None for a track that is absent or malformed."""
    a = annotations or {}
    return _track(a, "stable"), _track(a, "canary")


def outdated(annotations: Mapping[str, str] | None, versions: Iterable[str]) -> bool:
    """Whether a Lease reports only versions outside `versions` (the model's stable and canary now): such
    counters can weigh in no verdict again. A Lease that reports nothing yet is not outdated (its reporter may
    just have started)."""
    seen = {s.version for s in decode(annotations) if s is not None}
    return bool(seen) and not seen & set(versions)


def aggregate(stats: Iterable[CallStats | None]) -> dict[str, CallStats]:
    """Totals per version across reporters and tracks (a version is the same model wherever it is served)."""
    totals: dict[str, CallStats] = {}
    for s in stats:
        if s is not None:
            totals[s.version] = totals[s.version] + s if s.version in totals else s
    return totals


def lease_body(namespace: str, model: str, reporter: str, stable: CallStats | None, canary: CallStats | None) -> Any:
    """The whole Lease a reporter server-side-applies (holderIdentity = the reporter)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Lease",
        "metadata": {
            "name": lease_name(model, reporter),
            "namespace": namespace,
            "labels": labels(model),
            "annotations": encode(stable, canary),
        },
        "spec": {"holderIdentity": reporter},
    }


def _n(x: float) -> str:
    """Two decimals for people (0.42, 0.05, 0.2), significant digits below that (0.004)."""
    if x == 0 or abs(x) >= 0.01:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.1g}"


def verdict(
    stable: CallStats | None,
    canary: CallStats | None,
    min_calls: int,
    max_error_rate: float,
    max_score_drift: float,
) -> tuple[bool | None, str]:
    """Whether the canary may go on: True (healthy), False (roll it back) or None (too few calls yet), and why.

    The error rate is judged once the canary has `min_calls` calls; the score drift (|canary mean score -
    stable mean score|) once both versions have `min_calls` calls and successful ones, since a mean of a few
    scores says little. Both limits are exclusive: a rate equal to the limit passes.
    """
    calls = canary.calls if canary else 0
    if canary is None or calls < min_calls:
        return None, f"{calls}/{min_calls} canary calls so far; no verdict before canary.minCalls"
    rate = canary.error_rate or 0.0
    if rate > max_error_rate:
        return False, f"error rate {_n(rate)} > {_n(max_error_rate)} over {calls} calls"
    healthy = f"error rate {_n(rate)} <= {_n(max_error_rate)}"
    c, s = canary.mean_score, stable.mean_score if stable else None
    if stable is None or stable.calls < min_calls or c is None or s is None:
        seen = stable.calls if stable else 0
        return True, f"{healthy} over {calls} calls; score drift not judged yet ({seen}/{min_calls} stable calls)"
    drift = abs(c - s)
    if drift > max_score_drift:
        return False, (
            f"mean score {_n(c)} vs stable {_n(s)}: drift {_n(drift)} > {_n(max_score_drift)} over {calls} calls"
        )
    return True, f"{healthy}, score drift {_n(drift)} <= {_n(max_score_drift)} over {calls} calls"
