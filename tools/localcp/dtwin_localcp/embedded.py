"""Embedded mode (`make up` / `make down` / `make status`): the platform as local processes.

`up` starts (or reuses) the local control plane, PostgreSQL (:5432 unless taken) and
Mosquitto (:1883 unless taken), installs the CRDs, starts the operator, applies the demo
campus from `examples/`, waits until every object is Ready and the bridges are Available,
and prints what is running and where to look. Everything keeps running in the background
until `down`. The data plane runs as local processes too: a bridge per Site, the simulator (two days of
history backfilled, then the campus at 60x), the API gateway, the demo models' servers and the scorer.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from dtwin_localcp import api_process, dataplane, demo_models, kopf_process, ml_plane, ports, processes
from dtwin_localcp.controlplane import ControlPlane, ControlPlaneError, stop_run_dir
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.locations import default_bin_dir, repo_root
from dtwin_localcp.mosquitto import Mosquitto, MosquittoError
from dtwin_localcp.postgres import Postgres, PostgresError
from dtwin_localcp.twin import Twin, load_yaml, summary

log = logging.getLogger("dtwin")
app = typer.Typer(add_completion=False, no_args_is_help=True, help="dtwin embedded mode.")
RunDir = Annotated[Path, typer.Option("--run-dir", help="Where state and logs live.")]
DEFAULT_RUN = repo_root() / ".run"
OPERATOR_ENV = {"DTWIN_OPERATOR_METRICS_PORT": "9464", "DTWIN_OPERATOR_DRIFT_INTERVAL": "30"}


def _plane(run_dir: Path) -> ControlPlane:
    try:
        plane = ControlPlane.attach(run_dir / "cluster")
        log.info("control plane already running (%s)", plane.server)
    except ControlPlaneError:
        log.info("starting the local control plane (etcd, kube-apiserver, controllers, scheduler, KWOK)")
        plane = ControlPlane(run_dir / "cluster", default_bin_dir())
        plane.start()
    return plane


def _port(preferred: int) -> int:
    """The well-known port when it is free (what psql and MQTT tools try first), else any free one."""
    return ports.free_port() if ports.port_is_open(preferred) else preferred


def _postgres(run_dir: Path) -> Postgres:
    try:
        server = Postgres.attach(run_dir / "postgres")
        log.info("PostgreSQL already running on 127.0.0.1:%d", server.port)
    except PostgresError:
        server = Postgres(run_dir / "postgres", _port(5432))
        server.start()
        log.info("PostgreSQL started on 127.0.0.1:%d, log: %s", server.port, server.log_path)
    return server


def _mosquitto(run_dir: Path) -> Mosquitto:
    try:
        broker = Mosquitto.attach(run_dir / "mosquitto")
        log.info("Mosquitto already running on 127.0.0.1:%d", broker.port)
    except MosquittoError:
        broker = Mosquitto(run_dir / "mosquitto", _port(1883))
        broker.start()
        log.info("Mosquitto started on 127.0.0.1:%d, log: %s", broker.port, broker.log_path)
    return broker


def _operator(run_dir: Path, kubeconfig: Path, pg: Postgres) -> None:
    record = processes.read_record(run_dir / "operator", kopf_process.NAME)
    if record is not None and processes.is_alive(record):
        log.info("operator already running (pid %s)", record.pid)
        return
    env = {**OPERATOR_ENV, "DTWIN_OPERATOR_DATABASE_URL": pg.dsn("{database}")}
    record = kopf_process.start(run_dir / "operator", kubeconfig, env, log_format="json")
    log.info(
        "operator started (pid %s), log: %s", record.pid, processes.log_path(run_dir / "operator", kopf_process.NAME)
    )


@app.command()
def up(run_dir: RunDir = DEFAULT_RUN, timeout: float = 240) -> None:
    """Start everything and apply the demo campus; returns once it is Ready."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="[dtwin %(asctime)s] %(message)s", datefmt="%H:%M:%S"
    )
    root = repo_root()
    plane = _plane(run_dir)
    pg, mqtt = _postgres(run_dir), _mosquitto(run_dir)
    twin = Twin(plane.kubeconfig)
    twin.install_crds(root / "crds")
    log.info("CRDs installed and Established")
    _operator(run_dir, plane.kubeconfig, pg)
    docs = load_yaml((root / "examples").glob("*.yaml"))
    for doc in docs:
        twin.apply(doc)
    namespaces = sorted({d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]})
    objects = [d for d in docs if d["apiVersion"].startswith("dtwin.io/")]
    log.info(
        "applied %d objects from examples/ to %s; waiting until they are Ready", len(objects), ", ".join(namespaces)
    )
    for ns in namespaces:
        expected = sum(1 for d in objects if d["metadata"].get("namespace") == ns)
        twin.wait_all_ready(ns, expected, timeout)
        sites = [d["metadata"]["name"] for d in objects if d["kind"] == "Site" and d["metadata"]["namespace"] == ns]
        for site in sites:
            bridge = f"dtwin-bridge-{site}"
            wait_until(partial(_available, twin, ns, bridge), timeout, f"{bridge} to be Available")
        typer.echo(f"\nnamespace {ns}:\n{summary(twin.readiness(ns))}")
    counts, bridges = _stream(run_dir, twin, objects, pg, mqtt.port)
    api = api_process.start(run_dir / "dataplane", dataplane.env({}), pg.dsn("dtwin"), mqtt.port, plane.kubeconfig)
    store = demo_models.ensure(docs)
    ml_plane.start_serving(run_dir / "dataplane", plane.kubeconfig, store)
    ml_plane.start_scorer(run_dir / "dataplane", pg.dsn("dtwin"), plane.kubeconfig)
    trained = [n for t, n, _ in demo_models.wanted(docs) if demo_models.has_task(t)]
    serving = ml_plane.wait_for_servers(
        run_dir / "dataplane", [_md_name(d) for d in objects if _trained(d, trained)], timeout
    )
    recs = ml_plane.run_recommendations(run_dir / "dataplane", twin, namespaces, pg.dsn("dtwin"))
    login = (
        f"user {api.admin}, password (shown once, kept in {api.password_file}): {api.new_password}"
        if api.new_password
        else f"user {api.admin}, password in {api.password_file}"
    )
    kubectl = f"{plane.kubectl} --kubeconfig {plane.kubeconfig}"
    ns = namespaces[0] if namespaces else "default"
    psql = f"psql -h 127.0.0.1 -p {pg.port} -U postgres -d dtwin"
    typer.echo(f"""
dtwin is up (embedded mode).
  look:     {kubectl} get dtwin -n {ns}        (Sites: Live bridges; Assets: State, Health, LastSeen)
            {kubectl} get statefulset,hpa,cm,lease -n {ns}
  explain:  {kubectl} explain site.spec.storage
  metrics:  http://127.0.0.1:9464/metrics (operator); bridges: {", ".join(f"{s} :{p}" for s, p in bridges.items())}
  api:      {api.url}/docs   ({login})
  models:   {", ".join(f"{n} {u}" for n, u in serving.items())}   (POST /predict, /info; store {store})
            predictions: {psql} -c "select asset, model, version, ts, score from site_plant.predictions limit 5"
  energy:   {", ".join(recs) or "no energy model"} (log in {run_dir}/dataplane/logs/) over the backfill, then
            {psql} -c "select asset, kind, kwh_saved, cost_saved, title from site_hq.energy_recommendations"
  postgres: {psql}     (DSN {pg.dsn()})
  mqtt:     mosquitto_sub -h 127.0.0.1 -p {mqtt.port} -t 'sites/#' -v
  rows:     {", ".join(f"{s}.telemetry {n}" for s, n in counts.items())} and growing (simulator at 60x)
  alerts:   the demo faults (services/simulator/faults-demo.yaml, truth in {run_dir}/dataplane/truth.jsonl) fire
            within minutes: {psql} -c "select asset, kind, severity, state, message from site_plant.alerts"
            live:  mosquitto_sub -h 127.0.0.1 -p {mqtt.port} -t 'sites/+/events/alerts' -v
  edit:     {kubectl} edit sensorbinding -n {ns} ahu-1-filter-dp   (the running bridge hot-reloads it)
  logs:     {run_dir}/operator/logs/operator.log, {run_dir}/dataplane/logs/, {run_dir}/cluster/logs/
  stop:     make down
""")


def _stream(
    run_dir: Path, twin: Twin, objects: list[dict[str, Any]], pg: Postgres, mqtt_port: int
) -> tuple[dict[str, int], dict[str, int]]:
    """Bridges for every Site, the simulator, and the first rows in every site schema (and the bridges' ports)."""
    sites = [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in objects if d["kind"] == "Site"]
    brokers = {d["spec"].get("mqtt", {}).get("port", 1883) for d in objects if d["kind"] == "Site"}
    if brokers != {mqtt_port}:
        log.warning(
            "the Sites name MQTT port(s) %s but Mosquitto runs on %d: the bridges will not see the stream",
            sorted(brokers),
            mqtt_port,
        )
    root = repo_root()
    bridges = dataplane.start_bridges(run_dir / "dataplane", twin, sites, pg)
    dataplane.start_simulator(
        run_dir / "dataplane", mqtt_port, root / "examples", root / "services/simulator/faults-demo.yaml"
    )
    databases = {d["spec"].get("storage", {}).get("database", "dtwin") for d in objects if d["kind"] == "Site"}
    schemas = [f"site_{name.replace('-', '_')}" for _, name in sites]
    return dataplane.wait_for_rows(pg, databases.pop(), schemas, 120), bridges


def _md_name(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["name"])


def _trained(doc: dict[str, Any], models: list[str]) -> bool:
    return doc["kind"] == "ModelDeployment" and doc["spec"]["model"]["name"] in models


def _available(twin: Twin, namespace: str, name: str) -> bool:
    """Every replica of the bridge StatefulSet is available (a StatefulSet has no Available condition)."""
    sts = twin.get("StatefulSet", namespace, name, "apps/v1") or {}
    want: int = (sts.get("spec") or {}).get("replicas") or 0
    return want > 0 and ((sts.get("status") or {}).get("availableReplicas") or 0) >= want


@app.command()
def down(run_dir: RunDir = DEFAULT_RUN) -> None:
    """Stop the operator, Mosquitto, PostgreSQL, then the control plane."""
    dataplane.stop(run_dir / "dataplane")
    kopf_process.stop(run_dir / "operator")
    Mosquitto(run_dir / "mosquitto").stop()
    Postgres(run_dir / "postgres").stop()
    stopped = stop_run_dir(run_dir / "cluster")
    typer.echo(
        f"stopped: simulator, bridges, operator, mosquitto, postgres, {', '.join(stopped) or 'no control plane'}",
        err=True,
    )


@app.command()
def status(run_dir: RunDir = DEFAULT_RUN) -> None:
    """Where PostgreSQL and Mosquitto are, and what is Ready in every namespace of the demo."""
    for name, attach in (("postgres", Postgres.attach), ("mosquitto", Mosquitto.attach)):
        try:
            typer.echo(f"{name}: running on 127.0.0.1:{attach(run_dir / name).port}")
        except (PostgresError, MosquittoError) as err:
            typer.echo(f"{name}: not running ({err})")
    try:
        plane = ControlPlane.attach(run_dir / "cluster")
    except ControlPlaneError as err:
        typer.echo(f"not running: {err}")
        raise typer.Exit(1) from err
    twin = Twin(plane.kubeconfig)
    docs = load_yaml((repo_root() / "examples").glob("*.yaml"))
    for ns in sorted({d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]}):
        typer.echo(f"namespace {ns}:\n{summary(twin.readiness(ns))}")


if __name__ == "__main__":
    app()
