"""BentoML 1.4 serving of a stored bundle: the service every task's bento (`bentos/<task>/service.py`) subclasses.

A bento is three lines: `@bentoml.service(**SERVICE)` over `class XService(BundleService): task = "x"`. It serves
the model `DTWIN_MODEL_TAG` names (`name:version`) from the store under `$BENTOML_HOME`. The model is loaded once
in the `bentoml serve` process before any worker starts, with every check (found, of the bento's task, trained
with the installed scikit-learn and feature versions), so a model that cannot be served stops the server with the
reason in its log instead of a worker crash loop; each worker then loads it in `__init__`, and BentoML only
answers /readyz once that returned.

HTTP contract (the scorer depends on it):

    POST /predict {"windows": [window, ...]}  ->  [result, ...], one per window, in order: the bundle's dict plus
        "model" and "version"; a window the bundle cannot score gets {"asset": ..., "error": "<why>"} instead,
        and only that window: the other windows of the request, and of other requests batched with it, score.
    POST /info  ->  {"model", "version", "tag", "task", "lookback_steps", "feature_names", "metrics"}

/predict batches adaptively across concurrent requests (a request's windows are the unit): at most
`DTWIN_MAX_BATCH_SIZE` windows per call, waiting at most `DTWIN_MAX_LATENCY_MS`. Both are read when this module is
imported, because BentoML takes them as decorator arguments.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import bentoml
from bentoml.exceptions import NotFound

from dtwin_ml import store
from dtwin_ml.window import WindowError

TAG_ENV = "DTWIN_MODEL_TAG"
BATCH_ENV = "DTWIN_MAX_BATCH_SIZE"
LATENCY_ENV = "DTWIN_MAX_LATENCY_MS"
DEFAULT_BATCH, DEFAULT_LATENCY_MS = 64, 2000  # the ModelDeployment's defaults
# One worker per process: a replica is one pod with a quarter of a core requested, and the HPA scales pods.
SERVICE: dict[str, Any] = {"workers": 1, "traffic": {"timeout": 60}}

log = logging.getLogger("bentoml.serve.dtwin")
F = TypeVar("F", bound=Callable[..., Any])


class ModelUnavailable(RuntimeError):  # noqa: N818 - named like store.ModelVersionMismatch, its sibling
    """No model to serve: no tag configured, no such model in the store, or a model of another task."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name}={value} must be at least 1")
    return value


def batching(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`bentoml.api` keyword arguments of /predict from the environment."""
    size = _int(env, BATCH_ENV, DEFAULT_BATCH)
    # BentoML wants max_batch_size >= 2; a size of 1 means no batching, each request is one call.
    return {
        "batchable": size > 1,
        "max_batch_size": max(size, 2),
        "max_latency_ms": _int(env, LATENCY_ENV, DEFAULT_LATENCY_MS),
    }


def model_tag(env: Mapping[str, str] = os.environ) -> str:
    tag = env.get(TAG_ENV, "").strip()
    if not tag:
        raise ModelUnavailable(f"{TAG_ENV} is not set: it names the model to serve, as <name>:<version>")
    return tag


def stored_model(tag: str, task: str) -> Any:
    """The BentoML model of `tag` after every check that needs no unpickling (task, scikit-learn, features)."""
    try:
        model = bentoml.models.get(tag)
    except NotFound as e:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise ModelUnavailable(f"model {tag} is not in the model store under BENTOML_HOME={home}: {e}") from None
    trained = model.info.metadata.get("task") or model.info.labels.get("task")
    if trained != task:
        raise ModelUnavailable(f"model {model.tag} is a {trained!r} model; this bento serves {task!r} models")
    store.check(dict(model.info.metadata), str(model.tag))
    return model


@dataclass(frozen=True)
class Served:
    """A loaded bundle with its tag and metadata: what /predict and /info answer from."""

    tag: str
    bundle: Any  # dtwin_ml.bundle.Bundle or any object with task, lookback_steps, feature_names and predict
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        return self.tag.partition(":")[0]

    @property
    def version(self) -> str:
        return self.tag.partition(":")[2]

    def info(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version,
            "tag": self.tag,
            "task": self.bundle.task,
            "lookback_steps": int(self.bundle.lookback_steps),
            "feature_names": list(self.bundle.feature_names),
            "metrics": dict(self.metadata.get("metrics") or {}),
        }

    def predict(self, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One result per window. The whole batch goes to the bundle at once; only if that fails is each window
        scored alone, so a bad window costs its own answer and never the batch's (requests of other callers)."""
        stamp = {"model": self.name, "version": self.version}
        try:
            results = self.bundle.predict(windows)
        except Exception:
            results = [self._one(w) for w in windows]
        return [r if "error" in r else {**r, **stamp} for r in results]

    def _one(self, window: dict[str, Any]) -> dict[str, Any]:
        try:
            (result,) = self.bundle.predict([window])
            return dict(result)
        except WindowError as e:
            return {"asset": window.get("asset"), "error": str(e)}
        except Exception as e:
            # Not the caller's mistake as far as the bundle says, but still this window's alone: log the trace.
            log.exception("window of %r failed", window.get("asset"))
            return {"asset": window.get("asset"), "error": f"cannot score this window: {type(e).__name__}: {e}"}


def load(tag: str, task: str) -> Served:
    t0 = time.monotonic()
    model = stored_model(tag, task)
    served = Served(str(model.tag), store.from_model(model), dict(model.info.metadata))
    log.info(
        "loaded %s (%s, %d steps) in %.1f s", served.tag, task, served.bundle.lookback_steps, time.monotonic() - t0
    )
    return served


def _on_deployment(func: F) -> F:
    # What `bentoml.on_deployment` marks; set by hand so the hook can be a classmethod that sees the subclass.
    func.__bentoml_deployment_hook__ = True  # type: ignore[attr-defined]
    return func


class BundleService:
    """Serves one stored bundle of `task`; subclass it per task under `@bentoml.service(**SERVICE)`."""

    task: ClassVar[str] = ""

    @classmethod
    @_on_deployment
    def check_model(cls) -> None:
        """Runs once in the `bentoml serve` process before workers start. A model that cannot be served (missing,
        another task, another scikit-learn, a pickle this dtwin_ml cannot read) ends the server here with the
        reason; failing in a worker instead, BentoML would restart that worker over and over, never ready."""
        load(model_tag(), cls.task)

    def __init__(self) -> None:
        self.served = load(model_tag(), self.task)

    @bentoml.api(route="/predict", **batching())
    def predict(self, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Score each window's last step (see dtwin_ml.window for the window format)."""
        return self.served.predict(windows)

    @bentoml.api(route="/info")
    def info(self) -> dict[str, Any]:
        """The served model: tag, task, lookback steps, feature names and holdout metrics."""
        return self.served.info()


# --- running a bento as the operator does (tests, benchmarks) ----------------------------------------------------

BENTOS = Path(__file__).resolve().parents[3] / "bentos"
SERVICE_CLASS = {
    "anomaly": "AnomalyService",
    "failure": "FailureService",
    "rul": "RulService",
    "energy": "EnergyService",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BentoProcess:
    """`bentoml serve service:<Class>` in `bentos/<task>` with the operator's environment, on a free port.

    Output goes to `log`; `wait_ready` polls /readyz until it answers 200, the process exits or the deadline."""

    def __init__(
        self,
        task: str,
        tag: str,
        home: str | Path,
        log: Path,
        *,
        max_batch_size: int = DEFAULT_BATCH,
        max_latency_ms: int = DEFAULT_LATENCY_MS,
        bentos: Path = BENTOS,
        built: str | None = None,
    ) -> None:
        """`built`: serve that built bento (`dtwin-<task>:<version>` in `home`) instead, outside the checkout and
        with only the bento's own copy of dtwin_ml on the path, as its container would run it."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        if built:
            name, _, version = built.partition(":")
            src = Path(home) / "bentos" / name / version / "src"
            path, target, cwd = str(src / "libs" / "dtwin_ml"), built, log.parent
        else:
            here = str(Path(__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
            target, cwd = f"service:{SERVICE_CLASS[task]}", bentos / task
        env = {
            **os.environ,
            "PYTHONPATH": path,
            TAG_ENV: tag,
            "BENTOML_HOME": str(home),
            BATCH_ENV: str(max_batch_size),
            LATENCY_ENV: str(max_latency_ms),
            "BENTOML_DO_NOT_TRACK": "true",
        }
        argv = [sys.executable, "-m", "bentoml", "serve", target]
        with log.open("ab") as out:
            # A session of its own: stop() ends the workers with the server even if it has to kill.
            self.proc = subprocess.Popen(
                [*argv, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"bentoml serve not ready after {timeout:.0f} s:\n{self.tail()}")

    def wait_exit(self, timeout: float = 90.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def __enter__(self) -> BentoProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
