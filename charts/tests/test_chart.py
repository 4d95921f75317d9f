"""The Helm chart (charts/dtwin) and the cluster-mode packaging around it.

Plain tests keep the chart's CRD copies and skaffold.yaml honest. The `cluster`
tests build Helm (hack/build-helm.sh, cached) and use the local control plane
(a real kube-apiserver): `helm lint`, `helm template`, a server-side dry run of
everything the chart renders, a real `helm install`, and the important one:
the real operator, running as a process with nothing but a token of the
chart's ServiceAccount, reconciles a Site + Asset + SensorBinding to Ready —
so the chart's ClusterRole is proven sufficient, and `kubectl auth can-i`
proves it grants nothing beyond what the operator does. Every wait has a
deadline; nothing sleeps.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import tomllib
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.dynamic.exceptions import NotFoundError

from dtwin_localcp import kopf_process, ports, processes
from dtwin_localcp.controlplane import ControlPlane
from dtwin_localcp.kubeapi import WaitTimeoutError, wait_until
from dtwin_localcp.postgres import PgServer
from dtwin_localcp.twin import Twin, wait_deleted
from dtwin_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "dtwin"
CRDS = ROOT / "crds"
APP_VERSION = "0.1.0"
CONVERGE = 120.0
# The first cluster test also pays for a cold Helm build and the control plane's start.
CLUSTER_TIMEOUT = 1800
RENDERED_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"}


def docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


# --- plain tests -------------------------------------------------------------------------------


def test_chart_crds_equal_the_top_level_crds() -> None:
    top = sorted(p.name for p in CRDS.glob("*.yaml"))
    copies = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert top, f"no CRDs in {CRDS}"
    assert copies == top, "charts/dtwin/crds/ must hold exactly crds/*.yaml: cp crds/*.yaml charts/dtwin/crds/"
    stale = [n for n in top if (CRDS / n).read_bytes() != (CHART / "crds" / n).read_bytes()]
    assert not stale, f"charts/dtwin/crds/ is stale for {stale}: cp crds/*.yaml charts/dtwin/crds/"


# Plain scalars that YAML 1.1 parsers, like the one in kubectl and Helm (sigs.k8s.io/yaml), read as
# booleans while PyYAML reads them as strings (it already quotes yes/no/on/off when dumping).
YAML11_ONLY_BOOLS = {"y", "Y", "n", "N"}


def yaml11_ambiguities(text: str) -> list[str]:
    """Where `text` has such a plain scalar, as "line N: value"."""
    found: list[tuple[int, str]] = []
    for root in yaml.compose_all(text):
        stack: list[yaml.Node] = [root] if root is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                stack += [n for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                stack += node.value
            elif isinstance(node, yaml.ScalarNode) and node.style is None and node.value in YAML11_ONLY_BOOLS:
                found.append((node.start_mark.line + 1, node.value))
    return [f"line {line}: {value}" for line, value in sorted(found)]


@pytest.mark.parametrize(
    "path",
    [*sorted((CHART / "crds").glob("*.yaml")), *sorted((ROOT / "examples").glob("*.yaml"))],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_manifests_read_the_same_with_kubectl_and_helm(path: Path) -> None:
    """An unquoted `y:` is the key "y" to PyYAML but `true` to kubectl and Helm.

    A CRD applied by Helm or kubectl would then declare a property "true" instead of "y"
    (position.y, zones[].y), and an example applied with kubectl would set "true" instead
    of "y". The generators must quote such strings (a yaml.SafeDumper subclass with an
    implicit bool resolver for y|Y|n|N makes PyYAML quote them).
    """
    found = yaml11_ambiguities(path.read_text())
    assert not found, f"{path.relative_to(ROOT)}: unquoted scalars that kubectl/Helm read as booleans: {found[:5]}"


def test_chart_metadata_matches_the_project() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["apiVersion"], chart["name"], chart["version"]) == ("v2", "dtwin", "0.1.0")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"] == APP_VERSION
    # The operator's own default bridge image is the chart's default too.
    assert OperatorSettings.model_fields["bridge_image"].default == f"dtwin/bridge:{APP_VERSION}"


def test_skaffold_builds_every_image_of_the_chart_and_deploys_it() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert config["apiVersion"].startswith("skaffold/v4") and config["kind"] == "Config"
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    for image, artifact in artifacts.items():
        context = ROOT / artifact["context"]
        assert context.resolve() == ROOT
        dockerfile = (context / artifact["docker"]["dockerfile"]).read_text()
        target = artifact["docker"]["target"]
        assert image == f"dtwin/{target}" and re.search(rf"^FROM \S+ AS {target}$", dockerfile, re.MULTILINE), image
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    # Every image the chart names is built (and laid out by test_images.py).
    named = {node["image"]["repository"] for node in values.values() if isinstance(node, dict) and "image" in node}
    named.add(values["image"]["repository"])
    assert named == set(artifacts), named ^ set(artifacts)
    (release,) = config["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    for key, template in release["setValueTemplates"].items():
        node = values
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"skaffold sets {key}, which values.yaml lacks"
            node = node[part]
        owner = values if key.startswith("image.") else values[key.split(".")[0]]
        built = owner["image"]["repository"].replace("/", "_").replace("-", "_")
        field = {"repository": "REPO", "tag": "TAG", "digest": "DIGEST"}[key.rsplit(".", 1)[1]]
        assert f".IMAGE_{field}_{built}" in template, f"{key} must come from the built {built} artifact"


# --- Helm -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Helm:
    binary: Path
    env: dict[str, str]

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        if proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc.stdout

    def template_text(self, *args: str, release: str = "dtwin", namespace: str = "dtwin-system") -> str:
        return self.run("template", release, str(CHART), "--namespace", namespace, *args)

    def template(self, *args: str, release: str = "dtwin", namespace: str = "dtwin-system") -> list[dict[str, Any]]:
        return docs_of(self.template_text(*args, release=release, namespace=namespace))


def select_kinds(text: str, kinds: set[str]) -> str:
    """The documents of a multi-document YAML text whose kind is in `kinds`, as Helm wrote them.

    Helm's own text goes to kubectl, never a PyYAML re-dump: PyYAML writes the string "y"
    unquoted, which kubectl (YAML 1.1) would read as `true`.
    """
    chunks = re.split(r"^---\s*$", text, flags=re.MULTILINE)
    return "---\n".join(c.strip("\n") + "\n" for c in chunks if (d := yaml.safe_load(c)) and d["kind"] in kinds)


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Helm v4, built once into the cache by hack/build-helm.sh; its own state kept in a temp dir."""
    proc = subprocess.run(
        [str(ROOT / "hack" / "build-helm.sh")], capture_output=True, text=True, timeout=CLUSTER_TIMEOUT, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/build-helm.sh failed:\n{proc.stderr[-3000:]}", pytrace=False)
    binary = Path(proc.stdout.strip().splitlines()[-1])
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return Helm(binary, env)


def kubectl(
    plane: ControlPlane, kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(plane.kubectl), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc


@pytest.fixture
def fresh_namespace(control_plane: ControlPlane, kubeconfig: Path) -> Iterator[str]:
    """A new, uniquely named namespace; deleted (without waiting) afterwards."""
    name = f"dtwin-chart-{secrets.token_hex(4)}"
    kubectl(control_plane, kubeconfig, "create", "namespace", name)
    try:
        yield name
    finally:
        kubectl(control_plane, kubeconfig, "delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.mark.cluster
@pytest.mark.timeout(CLUSTER_TIMEOUT)
def test_helm_lint_passes(helm: Helm) -> None:
    helm.run("lint", "--strict", str(CHART))
    helm.run("lint", "--strict", str(CHART), "--set", "metrics.enabled=false,image.registry=mirror.invalid:5000")


@pytest.mark.cluster
@pytest.mark.timeout(CLUSTER_TIMEOUT)
def test_helm_template_renders_the_operator(helm: Helm) -> None:
    docs = helm.template()
    assert {d["kind"] for d in docs} == RENDERED_KINDS
    assert {d["metadata"]["name"] for d in docs} == {"dtwin", "dtwin-metrics"}
    with_crds = helm.template("--include-crds")
    assert sorted(d["metadata"]["name"] for d in with_crds if d["kind"] == "CustomResourceDefinition") == sorted(
        p.name.removesuffix(".yaml") for p in CRDS.glob("*.yaml")
    )

    dep = by_kind(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind(docs, "ServiceAccount")["metadata"]["name"]
    (c,) = pod["containers"]
    assert c["image"] == f"dtwin/operator:{APP_VERSION}"
    assert [*c["command"], *c["args"]] == [
        "kopf",
        "run",
        "--standalone",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8080/healthz",
        "-m",
        "dtwin_operator.main",
    ]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9464}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])

    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["DTWIN_OPERATOR_BRIDGE_IMAGE"] == f"dtwin/bridge:{APP_VERSION}"
    for component in ("model", "trainer", "scorer"):
        assert env[f"DTWIN_OPERATOR_{component.upper()}_IMAGE"] == f"dtwin/{component}:{APP_VERSION}"
    assert (env["DTWIN_OPERATOR_METRICS_PORT"], env["DTWIN_OPERATOR_METRICS_HOST"]) == ("9464", "0.0.0.0")
    assert env["DTWIN_OPERATOR_DRIFT_INTERVAL"] == "60"
    # Every variable is one the operator reads, and parses as its settings.
    fields = {f"DTWIN_OPERATOR_{f.upper()}" for f in OperatorSettings.model_fields}
    assert set(env) <= fields, set(env) - fields
    parsed = OperatorSettings(**{k.removeprefix("DTWIN_OPERATOR_").lower(): v for k, v in env.items()})
    assert (parsed.metrics_port, parsed.metrics_host, parsed.drift_interval) == (9464, "0.0.0.0", 60.0)

    svc = by_kind(docs, "Service")
    ann = svc["metadata"]["annotations"]
    assert (ann["prometheus.io/scrape"], ann["prometheus.io/port"], ann["prometheus.io/path"]) == (
        "true",
        "9464",
        "/metrics",
    )
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert dep["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]

    binding = by_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == by_kind(docs, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dtwin", "namespace": "dtwin-system"}]


@pytest.mark.cluster
@pytest.mark.timeout(CLUSTER_TIMEOUT)
def test_helm_template_values(helm: Helm) -> None:
    docs = helm.template(
        "--set",
        "image.registry=mirror.invalid:5000/,image.tag=dev,image.digest=sha256:" + "a" * 64,
        "--set",
        "metrics.enabled=false,operator.driftInterval=2.5,bridge.image.tag=b1,scorer.image.tag=s1",
    )
    assert {d["kind"] for d in docs} == RENDERED_KINDS - {"Service"}
    (c,) = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "mirror.invalid:5000/dtwin/operator:dev@sha256:" + "a" * 64
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["DTWIN_OPERATOR_BRIDGE_IMAGE"] == "mirror.invalid:5000/dtwin/bridge:b1"
    assert env["DTWIN_OPERATOR_SCORER_IMAGE"] == "mirror.invalid:5000/dtwin/scorer:s1"
    assert (env["DTWIN_OPERATOR_METRICS_PORT"], env["DTWIN_OPERATOR_DRIFT_INTERVAL"]) == ("0", "2.5")
    assert [p["name"] for p in c["ports"]] == ["health"]


@pytest.mark.cluster
@pytest.mark.timeout(CLUSTER_TIMEOUT)
def test_rendered_manifests_pass_a_server_side_dry_run(
    helm: Helm, control_plane: ControlPlane, kubeconfig: Path, fresh_namespace: str
) -> None:
    text = helm.template_text("--include-crds", namespace=fresh_namespace, release=fresh_namespace)
    docs = docs_of(text)
    out = kubectl(
        control_plane,
        kubeconfig,
        "apply",
        "--server-side",
        "--field-manager=dtwin-chart-tests",
        "--dry-run=server",
        "-f",
        "-",
        stdin=text,
    ).stdout
    assert out.count("(server dry run)") == len(docs) == len(RENDERED_KINDS) + len(list(CRDS.glob("*.yaml"))), out


@pytest.mark.cluster
@pytest.mark.timeout(CLUSTER_TIMEOUT)
def test_helm_install_and_uninstall(
    helm: Helm, control_plane: ControlPlane, kubeconfig: Path, fresh_namespace: str
) -> None:
    """A real `helm install`: the chart's objects are created and the operator Deployment rolls out.

    KWOK's fake node marks the Pod Ready without pulling the image, so this proves
    the release installs and rolls out, not that the image runs (see the RBAC test).
    """
    release = fresh_namespace
    kc = ["--kubeconfig", str(kubeconfig), "--namespace", fresh_namespace]
    helm.run("install", release, str(CHART), *kc, "--wait", "--timeout", "120s")
    try:
        status = helm.run("status", release, *kc)
        assert "STATUS: deployed" in status
        dep = kubectl(control_plane, kubeconfig, "-n", fresh_namespace, "get", "deployment", release, "-o", "yaml")
        assert yaml.safe_load(dep.stdout)["status"].get("availableReplicas") == 1
        kubectl(control_plane, kubeconfig, "get", "clusterrole", release)
    finally:
        helm.run("uninstall", release, *kc, "--wait", "--timeout", "60s")
    gone = kubectl(control_plane, kubeconfig, "get", "clusterrole,clusterrolebinding", release, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


# --- the API gateway (api.enabled) -------------------------------------------------------------

API_VALUES = ("--set", "api.enabled=true,api.database.url=postgresql://dtwin@db:5432/dtwin,api.mqtt.host=mosquitto",
              "--set", "api.settings.rate_limit_per_ip=5/second,api.corsOrigins[0]=https://portal.example")  # fmt: skip
API_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "Secret", "Job"}


def api_docs(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "api"]


@pytest.mark.cluster
@pytest.mark.timeout(CLUSTER_TIMEOUT)
def test_helm_template_renders_the_api(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from dtwin_api.settings import Settings

    assert not api_docs(helm.template())  # off by default
    docs = helm.template(*API_VALUES)
    api = api_docs(docs)
    assert {d["kind"] for d in api} == API_KINDS
    assert {d["kind"] for d in docs if d not in api} == RENDERED_KINDS  # the operator's objects are unchanged
    dep, svc, secret, job = (by_kind(api, k) for k in ("Deployment", "Service", "Secret", "Job"))
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind(api, "ServiceAccount")["metadata"]["name"] == "dtwin-api"
    (c,) = pod["containers"]
    assert c["image"] == f"dtwin/api:{APP_VERSION}" and c["command"] == ["python", "-m", "dtwin_api", "serve"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    plain = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert secret_refs == {
        "DTWIN_API_DATABASE_URL": {"name": "dtwin-api", "key": "database-url"},
        "DTWIN_API_JWT_SECRET": {"name": "dtwin-api", "key": "jwt-secret"},
    }
    # Every variable is a setting of the API, and they parse (with the Secret's values) as its Settings.
    fields = {f"DTWIN_API_{f.upper()}" for f in Settings.model_fields}
    assert set(plain) | set(secret_refs) <= fields, (set(plain) | set(secret_refs)) - fields
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["database-url"] == "postgresql://dtwin@db:5432/dtwin"
    for name, value in plain.items():  # as the container's environment (JSON lists are parsed from it)
        monkeypatch.setenv(name, value)
    parsed = Settings(jwt_secret=data["jwt-secret"], database_url=data["database-url"])  # type: ignore[arg-type]
    assert (parsed.mqtt_enabled, parsed.mqtt_host, parsed.rate_limit_per_ip) == (True, "mosquitto", "5/second")
    assert parsed.cors_origins == ["https://portal.example"]
    # The JWT key is generated per install (never a fixed default).
    assert len(data["jwt-secret"]) >= 32
    again = by_kind(api_docs(helm.template(*API_VALUES)), "Secret")["data"]["jwt-secret"]
    assert again != secret["data"]["jwt-secret"]

    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install"
    (jc,) = job["spec"]["template"]["spec"]["containers"]
    assert jc["command"][:5] == ["python", "-m", "dtwin_api", "bootstrap-admin", "--if-missing"]
    assert {e["name"] for e in jc["env"]} >= {"DTWIN_API_DATABASE_URL"}
    rules = [(r["resources"], r["verbs"]) for r in by_kind(api, "ClusterRole")["rules"]]
    assert rules == [(["modeldeployments"], ["get", "list", "watch"]), (["leases"], ["list"])]

    with pytest.raises(AssertionError, match=r"api\.database\.url or api\.database\.existingSecret"):
        helm.template("--set", "api.enabled=true")
    own = helm.template("--set", "api.enabled=true,api.database.existingSecret=pg,api.jwt.existingSecret=jwt")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in by_kind(api_docs(own), "Deployment")["spec"][
        "template"]["spec"]["containers"][0]["env"] if "valueFrom" in e}  # fmt: skip
    assert refs == {"DTWIN_API_DATABASE_URL": "pg", "DTWIN_API_JWT_SECRET": "jwt"}
    assert by_kind(api_docs(own), "Secret").get("data") in (None, {})


@pytest.mark.cluster
@pytest.mark.timeout(CLUSTER_TIMEOUT)
def test_api_manifests_pass_a_server_side_dry_run(
    helm: Helm, control_plane: ControlPlane, kubeconfig: Path, fresh_namespace: str
) -> None:
    text = helm.template_text(*API_VALUES, namespace=fresh_namespace, release=fresh_namespace)
    out = kubectl(control_plane, kubeconfig, "apply", "--server-side", "--field-manager=dtwin-chart-tests",
                  "--dry-run=server", "-f", "-", stdin=text).stdout  # fmt: skip
    assert out.count("(server dry run)") == len(docs_of(text)) == len(RENDERED_KINDS) + len(API_KINDS), out


# --- RBAC, proven by the real operator ---------------------------------------------------------


def site_doc() -> dict[str, Any]:
    return {
        "apiVersion": "dtwin.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": "hq"},
        "spec": {"layout": {"floors": [{"name": "l1", "level": 1}]}},
    }


def asset_doc() -> dict[str, Any]:
    return {
        "apiVersion": "dtwin.io/v1alpha1",
        "kind": "Asset",
        "metadata": {"name": "p1"},
        "spec": {"siteRef": "hq", "kind": "Pump", "location": {"floor": "l1"}},
    }


def binding_doc() -> dict[str, Any]:
    return {
        "apiVersion": "dtwin.io/v1alpha1",
        "kind": "SensorBinding",
        "metadata": {"name": "p1-temp"},
        "spec": {"assetRef": "p1", "metric": "discharge_temp", "topic": "sites/hq/p1/t", "unit": "degC"},
    }


def model_doc(canary: bool, task: str = "failure") -> dict[str, Any]:
    spec: dict[str, Any] = {"task": task, "model": {"name": "failure-rf", "version": "1.0"}}
    if canary:
        spec["canary"] = {"version": "1.1"}
    return {"apiVersion": "dtwin.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "pumps"}, "spec": spec}


def delete_twin(twin: Twin, ns: str) -> None:
    """Delete the objects and wait for them; if a finalizer stays, strip it so the namespace can go."""
    for doc in (model_doc(False), binding_doc(), asset_doc(), site_doc()):
        with contextlib.suppress(NotFoundError):
            twin.resource(doc["kind"]).delete(name=doc["metadata"]["name"], namespace=ns)
    for kind, name in (("ModelDeployment", "pumps"), ("Site", "hq")):
        try:
            wait_deleted(twin, kind, ns, name, CONVERGE)
        except WaitTimeoutError:
            with contextlib.suppress(NotFoundError):
                twin.resource(kind).patch(
                    name=name,
                    namespace=ns,
                    body={"metadata": {"finalizers": None}},
                    content_type="application/merge-patch+json",
                )
            raise


STAMP = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] ", re.MULTILINE)
DENIED = re.compile(r"forbidden|\b403\b|not enough permissions", re.IGNORECASE)
# NamespaceLifecycle answers 403 too, for writes into a namespace being deleted; in a full
# test session the cluster-wide operator may still see objects left by earlier tests there.
TERMINATING = re.compile(r"because it is being terminated")


def log_records(text: str) -> list[str]:
    """Kopf's log split into records (a stamped line plus its continuation lines), stamps removed.

    Removing "[YYYY-MM-DD HH:MM:SS,mmm] " keeps milliseconds from ever reading as a 403.
    """
    return [r.strip() for r in STAMP.split(text) if r.strip()]


def denials(log: Path) -> list[str]:
    """Log records of requests the API server refused (403), other than writes into a dying namespace."""
    text = log.read_text() if log.exists() else ""
    return [r for r in log_records(text) if DENIED.search(r) and not TERMINATING.search(r)]


def serviceaccount_kubeconfig(admin: Path, token: str, path: Path) -> Path:
    """A kubeconfig with the admin's cluster entry (server, CA) and nothing but the token as user."""
    config = yaml.safe_load(admin.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}],
                "current-context": "operator",
            }
        )
    )
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class Installed:
    namespace: str
    serviceaccount: str
    kubeconfig: Path  # the ServiceAccount's


@pytest.fixture
def chart_rbac(
    helm: Helm, control_plane: ControlPlane, kubeconfig: Path, tmp_path: Path, fresh_namespace: str
) -> Iterator[Installed]:
    """The chart's CRDs, ServiceAccount, ClusterRole and ClusterRoleBinding, installed under unique names."""
    name = fresh_namespace  # unique per run; also names the cluster-scoped objects
    text = helm.template_text("--set", f"fullnameOverride={name}", namespace=name, release=name)
    rbac = select_kinds(text, {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"})
    Twin(kubeconfig, field_manager="dtwin-chart-tests", database_per_namespace=True).install_crds(CHART / "crds")
    try:
        kubectl(control_plane, kubeconfig, "apply", "-f", "-", stdin=rbac)
        sa = by_kind(docs_of(rbac), "ServiceAccount")["metadata"]["name"]
        token = kubectl(control_plane, kubeconfig, "-n", name, "create", "token", sa, "--duration=2h").stdout.strip()
        sa_kubeconfig = serviceaccount_kubeconfig(kubeconfig, token, tmp_path / "operator.kubeconfig")
        yield Installed(name, sa, sa_kubeconfig)
    finally:
        kubectl(control_plane, kubeconfig, "delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found")


CAN = [
    ("list", "sites.dtwin.io", "-A"),
    ("watch", "sensorbindings.dtwin.io", "-A"),
    ("patch", "assets.dtwin.io", "-n", "x"),
    ("patch", "modeldeployments.dtwin.io", "--subresource=status", "-n", "x"),
    ("create", "statefulsets.apps", "-n", "x"),
    ("watch", "statefulsets.apps", "-A"),
    ("patch", "horizontalpodautoscalers.autoscaling", "-n", "x"),
    ("get", "configmaps", "-n", "x"),
    ("create", "events", "-n", "x"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "leases.coordination.k8s.io", "-A"),
    ("create", "leases.coordination.k8s.io", "-n", "x"),  # to grant it to the bridge's Role
    ("create", "serviceaccounts", "-n", "x"),
    ("patch", "roles.rbac.authorization.k8s.io", "-n", "x"),
    ("create", "rolebindings.rbac.authorization.k8s.io", "-n", "x"),
    # ModelDeployment children: serving Deployments (the canary trio is deleted on rollback) and the CronJob.
    ("create", "deployments.apps", "-n", "x"),
    ("watch", "deployments.apps", "-A"),
    ("delete", "deployments.apps", "-n", "x"),
    ("delete", "horizontalpodautoscalers.autoscaling", "-n", "x"),
    ("patch", "cronjobs.batch", "-n", "x"),
    ("delete", "cronjobs.batch", "-n", "x"),  # the recommendations of a model whose task is no longer energy
    ("list", "leases.coordination.k8s.io", "-n", "x"),
    ("update", "modeldeployments.dtwin.io", "--subresource=finalizers", "-n", "x"),
]
CANNOT = [
    ("get", "secrets", "-n", "x"),
    ("list", "secrets", "-A"),
    ("create", "pods", "-n", "x"),
    ("delete", "statefulsets.apps", "-n", "x"),
    ("update", "statefulsets.apps", "-n", "x"),
    ("patch", "statefulsets.apps", "--subresource=scale", "-n", "x"),  # the HPA scales it, not the operator
    ("patch", "deployments.apps", "--subresource=scale", "-n", "x"),  # the HPA scales model servers
    ("create", "jobs.batch", "-n", "x"),  # the CronJob controller runs the trainers, not the operator
    ("delete", "configmaps", "-n", "x"),
    ("create", "sites.dtwin.io", "-n", "x"),
    ("delete", "sites.dtwin.io", "-n", "x"),
    ("update", "sites.dtwin.io", "-n", "x"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "serviceaccounts", "--subresource=token", "-n", "x"),
    ("delete", "namespaces"),
    ("get", "nodes"),
    ("patch", "events", "-n", "x"),
    ("update", "leases.coordination.k8s.io", "-n", "x"),
    ("delete", "serviceaccounts", "-n", "x"),
    ("delete", "roles.rbac.authorization.k8s.io", "-n", "x"),
    ("escalate", "roles.rbac.authorization.k8s.io", "-n", "x"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
]


@pytest.mark.cluster
@pytest.mark.timeout(CLUSTER_TIMEOUT)
def test_chart_rbac_grants_what_the_operator_does_and_no_more(
    control_plane: ControlPlane, chart_rbac: Installed
) -> None:
    who = kubectl(control_plane, chart_rbac.kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who.stdout == f"system:serviceaccount:{chart_rbac.namespace}:{chart_rbac.serviceaccount}"

    def can(args: Sequence[str]) -> bool:
        proc = kubectl(control_plane, chart_rbac.kubeconfig, "auth", "can-i", *args, check=False)
        assert proc.stdout.strip() in ("yes", "no"), proc.stderr
        return proc.stdout.strip() == "yes"

    assert [a for a in CAN if not can(a)] == []
    assert [a for a in CANNOT if can(a)] == []


@pytest.mark.cluster
@pytest.mark.timeout(CLUSTER_TIMEOUT)
def test_operator_reconciles_with_only_the_chart_rbac(
    control_plane: ControlPlane, kubeconfig: Path, chart_rbac: Installed, postgres_server: PgServer, tmp_path: Path
) -> None:
    ns = chart_rbac.namespace
    twin = Twin(
        kubeconfig, field_manager="dtwin-chart-tests", database_per_namespace=True
    )  # the test acts as admin; the operator does not
    run_dir = tmp_path / "operator"
    metrics_port = ports.free_port()
    extra_env = {
        "DTWIN_OPERATOR_DRIFT_INTERVAL": "3",
        "DTWIN_OPERATOR_RETRY_DELAY": "1",
        "DTWIN_OPERATOR_ERROR_BACKOFF": "1",
        "DTWIN_OPERATOR_METRICS_PORT": str(metrics_port),
        "DTWIN_OPERATOR_METRICS_HOST": "127.0.0.1",
        "DTWIN_OPERATOR_DATABASE_URL": postgres_server.dsn("{database}"),
    }
    log = processes.log_path(run_dir, kopf_process.NAME)

    def log_tail() -> str:
        return "operator log (tail):\n" + processes.tail(run_dir, kopf_process.NAME, lines=60)

    with kopf_process.running(run_dir, chart_rbac.kubeconfig, extra_env) as record:

        def alive() -> None:
            """Fail fast: the operator died, or it was denied something."""
            if not processes.is_alive(record):
                raise AssertionError("the operator exited\n" + log_tail())
            if denied := denials(log):
                raise AssertionError("the operator was denied something:\n" + "\n".join(denied[:10]))

        try:
            for doc in (site_doc(), asset_doc(), binding_doc()):
                twin.apply(doc, ns)

            def ready() -> bool:
                alive()
                rows = twin.readiness(ns)
                return len(rows) == 3 and all(r.ready and r.current for r in rows)

            def not_ready() -> str:
                rows = [f"  {r.kind}/{r.name}: {r.reason}: {r.message}" for r in twin.readiness(ns) if not r.ready]
                return "\n".join([*rows, log_tail()])

            wait_until(ready, CONVERGE, "Site, Asset and SensorBinding to be Ready", on_timeout=not_ready)
            bridge = wait_until(
                lambda: twin.get("StatefulSet", ns, "dtwin-bridge-hq", "apps/v1"),
                CONVERGE,
                "the bridge StatefulSet",
                on_timeout=log_tail,
            )
            (owner,) = bridge["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["name"]) == ("Site", "hq")
            for kind, version, name in (
                ("ConfigMap", "v1", "dtwin-bridge-hq-routing"),
                ("Service", "v1", "dtwin-bridge-hq"),
                ("HorizontalPodAutoscaler", "autoscaling/v2", "dtwin-bridge-hq"),
                ("ServiceAccount", "v1", "dtwin-bridge-hq"),
                ("Role", "rbac.authorization.k8s.io/v1", "dtwin-bridge-hq"),
                ("RoleBinding", "rbac.authorization.k8s.io/v1", "dtwin-bridge-hq"),
            ):
                assert twin.get(kind, ns, name, version) is not None, f"{kind} {name}"

            # A ModelDeployment's children (the scorer's Role grants Lease rights the operator must hold), and
            # the prune of its canary trio and its recommendations CronJob when the canary and the energy task go.
            twin.apply(model_doc(canary=True, task="energy"), ns)
            for kind, version, name in (
                ("Deployment", "apps/v1", "dtwin-model-pumps-canary"),
                ("CronJob", "batch/v1", "dtwin-train-pumps"),
                ("CronJob", "batch/v1", "dtwin-recs-pumps"),
                ("Deployment", "apps/v1", "dtwin-scorer-pumps"),
                ("Role", "rbac.authorization.k8s.io/v1", "dtwin-scorer-pumps"),
                ("RoleBinding", "rbac.authorization.k8s.io/v1", "dtwin-scorer-pumps"),
            ):
                wait_until(lambda k=kind, v=version, n=name: twin.get(k, ns, n, v), CONVERGE, name, on_timeout=log_tail)
            twin.apply(model_doc(canary=False), ns)
            wait_deleted(twin, "Deployment", ns, "dtwin-model-pumps-canary", CONVERGE, "apps/v1")
            wait_deleted(twin, "CronJob", ns, "dtwin-recs-pumps", CONVERGE, "batch/v1")
            alive()

            # Events are posted in the background; one about the Site proves `create events`.
            def site_event() -> bool:
                alive()
                events = twin.items("Event", ns, "v1")
                return any(e["involvedObject"]["kind"] == "Site" for e in events)

            wait_until(site_event, CONVERGE, "an Event about the Site", on_timeout=log_tail)
            # The metrics endpoint binds where DTWIN_OPERATOR_METRICS_HOST says.
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
                assert 'dtwin_operator_reconciles_total{kind="Site",result="ok"}' in resp.read().decode()
        finally:
            # Delete while the operator runs: Kopf's finalizer (the drift timer needs one) is
            # removed by the operator itself, with the chart's permissions.
            delete_twin(twin, ns)

    denied = denials(log)
    assert not denied, "the operator was denied something:\n" + "\n".join(denied[:10])
    assert "dtwin operator configured" in log.read_text()
