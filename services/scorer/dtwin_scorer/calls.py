"""This process's call statistics per model and track, in the shape `dtwin_core.model_calls` reports them.

A call is one window sent to a model version: it fails when its request failed (connection, timeout, HTTP
error, a malformed answer) or its result is `{"error": ...}`, and succeeds with a score otherwise. Results
without a score (an asset the model does not know) are no evidence either way and are not counted. The counters
are cumulative per version: when the routing names another version for a track, that track starts from zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dtwin_core.model_calls import CallStats


@dataclass
class ModelCalls:
    tracks: dict[str, CallStats] = field(default_factory=dict)  # "stable" | "canary" -> its current version's

    def add(self, track: str, version: str, calls: int = 0, errors: int = 0, score_sum: float = 0.0) -> None:
        now = self.tracks.get(track)
        if now is None or now.version != version:
            now = CallStats(version)
        self.tracks[track] = now + CallStats(version, calls, errors, score_sum)

    def forget(self, track: str) -> None:
        """The routing has no such track any more (the canary ended)."""
        self.tracks.pop(track, None)

    def pair(self) -> tuple[CallStats | None, CallStats | None]:
        return self.tracks.get("stable"), self.tracks.get("canary")
