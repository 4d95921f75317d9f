"""Where an import goes: the Site's routing table (the bridge's own validation rules) and storage settings.

Three sources, one result (`SiteTarget`):
- the cluster (default): the Site custom resource for its storage settings, and the routing table the operator
  rendered into ConfigMap `dtwin-bridge-<site>-routing` (key `routing.json`), read with the kubernetes client;
- `--from-yaml DIR`: the Site, Asset and SensorBinding YAML, rendered locally by the operator's own
  `dtwin_operator.render.routing.table` (as `dtwin_trainer.history` does), so no cluster is needed;
- `--routing FILE`: a routing.json as the operator renders it (e.g. `kubectl get cm ... -o jsonpath`); storage
  settings then default (no retention bound on old readings).
Everything here but `from_cluster` is pure apart from reading files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dtwin_bridge.model import RoutingTable
from dtwin_cli.errors import CliError
from dtwin_core.schema import StorageSpec
from dtwin_operator import names
from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.render import routing
from dtwin_operator.render.context import AssetView, BindingView, SiteContext
from dtwin_operator.render.storage import storage_spec


@dataclass(frozen=True)
class SiteTarget:
    namespace: str
    site: str
    table: RoutingTable
    database: str  # fills `{database}` in the DSN, as the bridge does
    storage: StorageSpec
    retention_days: int | None  # None: unknown (a bare routing file), so old readings are not bounded


def parse_ref(ref: str) -> tuple[str, str]:
    """`<namespace>/<site>` -> (namespace, site)."""
    namespace, sep, site = ref.partition("/")
    if not sep or not namespace or not site or "/" in site:
        raise CliError(f"--site must be <namespace>/<site>, got {ref!r}")
    return namespace, site


def _target(namespace: str, site: str, table: Mapping[str, Any], spec: SiteSpec | None) -> SiteTarget:
    try:
        parsed = RoutingTable.from_dict(table)
    except (KeyError, ValueError, TypeError) as err:
        raise CliError(f"routing table of site {namespace}/{site} is not valid: {err}") from None
    if spec is None:
        storage = StorageSpec(schema=str(table.get("schema") or names.schema(site)))
        return SiteTarget(namespace, site, parsed, str(table.get("database", "dtwin")), storage, None)
    storage = storage_spec(SiteContext(namespace, site, "", spec))
    return SiteTarget(namespace, site, parsed, spec.storage.database, storage, spec.storage.retention_days)


def _site_spec(namespace: str, site: str, raw: Mapping[str, Any]) -> SiteSpec:
    try:
        return SiteSpec.model_validate(raw)
    except ValueError as err:
        raise CliError(f"Site {namespace}/{site} has an invalid spec: {str(err).splitlines()[0]}") from None


def read_docs(path: Path) -> list[dict[str, Any]]:
    """Every YAML document of a file, or of the `*.yaml`/`*.yml` files of a directory."""
    if not path.exists():
        raise CliError(f"--from-yaml {path}: no such file or directory")
    files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
    try:
        return [d for f in files for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
    except yaml.YAMLError as err:
        raise CliError(f"--from-yaml {path}: not valid YAML: {str(err).splitlines()[0]}") from None


def _mine(docs: Iterable[dict[str, Any]], kind: str, namespace: str) -> list[dict[str, Any]]:
    # A document without a namespace is applied to whichever namespace kubectl targets: take it as ours.
    found = [
        d for d in docs if d.get("kind") == kind and (d.get("metadata") or {}).get("namespace", namespace) == namespace
    ]
    return sorted(found, key=lambda d: str(d["metadata"]["name"]))


def context(path: Path, namespace: str, site: str) -> SiteContext:
    """The Site with its Assets and SensorBindings from YAML, resolved as the operator's reconciler does."""
    docs = read_docs(path)
    sites = {str(d["metadata"]["name"]): d for d in _mine(docs, "Site", namespace)}
    if site not in sites:
        known = ", ".join(f"{namespace}/{s}" for s in sites) or "none"
        raise CliError(f"unknown site {namespace}/{site} in {path} (sites there: {known})")
    spec = _site_spec(namespace, site, sites[site].get("spec") or {})
    try:
        assets = tuple(
            AssetView(d["metadata"]["name"], AssetSpec.model_validate(d["spec"]))
            for d in _mine(docs, "Asset", namespace)
        )
        mine = tuple(a for a in assets if a.spec.site_ref == site)
        held = {a.name for a in mine}
        bindings = tuple(
            BindingView(d["metadata"]["name"], SensorBindingSpec.model_validate(d["spec"]))
            for d in _mine(docs, "SensorBinding", namespace)
        )
    except (KeyError, ValueError) as err:
        raise CliError(f"--from-yaml {path}: invalid resource: {str(err).splitlines()[0]}") from None
    return SiteContext(namespace, site, "", spec, mine, tuple(b for b in bindings if b.spec.asset_ref in held))


def from_yaml(path: Path, namespace: str, site: str) -> SiteTarget:
    """Render the routing table from YAML resources exactly as the operator would for this Site."""
    ctx = context(path, namespace, site)
    return _target(namespace, site, json.loads(routing.serialize(routing.table(ctx))), ctx.spec)


def from_routing_file(path: Path, namespace: str, site: str) -> SiteTarget:
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"--routing {path}: no such file") from None
    except ValueError as err:
        raise CliError(f"--routing {path}: not JSON: {err}") from None
    if table.get("site") not in (None, site):
        raise CliError(f"--routing {path} is the table of site {table.get('site')!r}, not {site!r}")
    return _target(namespace, site, table, None)


def from_cluster(kubeconfig: Path | None, namespace: str, site: str) -> SiteTarget:
    """The Site resource and its rendered routing ConfigMap, read from the API server."""
    from kubernetes import client, config  # imported here: the YAML path must not need a kubeconfig
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    try:
        api = config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)
    except (ConfigException, OSError) as err:
        raise CliError(f"no usable kubeconfig ({err}); pass --kubeconfig, or --from-yaml DIR to work offline") from None
    try:
        try:
            obj: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, "sites", site
            )
        except ApiException as err:
            if err.status == 404:
                raise CliError(
                    f"unknown site {namespace}/{site}: no Site {site!r} in namespace {namespace!r}"
                ) from None
            raise CliError(f"cannot read Site {namespace}/{site}: {err.status} {err.reason}") from None
        spec = _site_spec(namespace, site, obj.get("spec") or {})
        cm_name = names.routing_configmap(site)
        try:
            cm = client.CoreV1Api(api).read_namespaced_config_map(cm_name, namespace)
        except ApiException as err:
            if err.status == 404:
                raise CliError(
                    f"site {namespace}/{site} has no ConfigMap {cm_name} yet: is the operator running?"
                ) from None
            raise CliError(f"cannot read ConfigMap {namespace}/{cm_name}: {err.status} {err.reason}") from None
        text = (cm.data or {}).get(names.ROUTING_KEY)
        if text is None:
            raise CliError(f"ConfigMap {namespace}/{cm_name} has no key {names.ROUTING_KEY}")
        return _target(namespace, site, json.loads(text), spec)
    finally:
        api.close()
