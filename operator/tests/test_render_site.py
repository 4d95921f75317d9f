"""Unit tests of the Site renderers: routing table, bridge identity/StatefulSet/Service/HPA, owned-object shape."""

from __future__ import annotations

import json
import socket

import pytest

from dtwin_bridge.settings import Settings
from dtwin_operator import names
from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.render import routing
from dtwin_operator.render.bridge_rbac import LEASE_VERBS, bridge_rbac
from dtwin_operator.render.context import AssetView, BindingView, Images, SiteContext
from dtwin_operator.render.site import METRICS_PORT, bridge_hpa, bridge_service, bridge_statefulset, site_children


def binding(name: str, asset: str = "ahu-1", **spec: object) -> BindingView:
    base = {"assetRef": asset, "metric": "supply_air_temp", "topic": f"sites/hq/{asset}/telemetry", "unit": "degC"}
    return BindingView(name, SensorBindingSpec.model_validate({**base, **spec}))


def context(bindings: tuple[BindingView, ...] = (), **site: object) -> SiteContext:
    spec = SiteSpec.model_validate(
        {
            "layout": {"floors": [{"name": "l1", "level": 1}]},
            "bridge": {
                "minReplicas": 2,
                "maxReplicas": 5,
                "targetCpuUtilization": 60,
                "batchSize": 1000,
                "flushIntervalMs": 100,
            },
            "storage": {"database": "campus"},
            **site,
        }
    )
    asset = AssetView("ahu-1", AssetSpec.model_validate({"siteRef": "hq", "kind": "AHU", "location": {"floor": "l1"}}))
    return SiteContext(
        namespace="demo",
        name="hq",
        uid="uid-1",
        spec=spec,
        assets=(asset,),
        bindings=bindings,
        images=Images(bridge="dtwin/bridge:test"),
    )


def test_routing_table_carries_every_binding_field() -> None:
    b = binding(
        "ahu-1-sat",
        field="sat",
        payloadFormat="senml",
        unit="degF",
        validRange={"min": -40, "max": 250},
        thresholds={"warningHigh": 80, "criticalHigh": 90, "forSeconds": 60, "hysteresis": 2},
        expectedIntervalSeconds=15,
    )
    table = routing.table(context((b,)))
    assert table["schema"] == "site_hq"
    assert table["database"] == "campus"
    assert table["sharedGroup"] == "dtwin-demo-hq"
    assert table["batch"] == {"size": 1000, "flushIntervalMs": 100}
    assert table["broker"] == {"host": "127.0.0.1", "port": 1883, "tls": False}
    assert table["routes"] == [
        {
            "sensor": "ahu-1-sat",
            "asset": "ahu-1",
            "metric": "supply_air_temp",
            "topic": "sites/hq/ahu-1/telemetry",
            "format": "senml",
            "field": "sat",
            "unit": "degF",
            "expectedIntervalSeconds": 15,
            "validRange": {"min": -40.0, "max": 250.0},
            "thresholds": {"warningHigh": 80.0, "criticalHigh": 90.0, "forSeconds": 60, "hysteresis": 2.0},
        }
    ]


def test_field_defaults_to_metric_and_range_is_optional() -> None:
    (r,) = routing.table(context((binding("b1"),)))["routes"]
    assert r["field"] == "supply_air_temp"
    assert "validRange" not in r


def test_subscriptions_use_prefix_and_add_topics_outside_it() -> None:
    ctx = context((binding("a"), binding("b", topic="legacy/ahu1", metric="rat")), mqtt={"topicPrefix": "campus/hq"})
    assert routing.subscriptions(ctx) == ["campus/hq/#", "legacy/ahu1", "sites/hq/ahu-1/telemetry"]
    assert routing.subscriptions(context((binding("a"),))) == ["sites/hq/#"]


def test_duplicate_source_is_left_out_and_reported() -> None:
    ctx = context((binding("a"), binding("b"), binding("c", field="other")))
    assert routing.conflicts(ctx) == {"b": "a"}
    assert [r["sensor"] for r in routing.table(ctx)["routes"]] == ["a", "c"]


def test_config_hash_changes_with_any_binding_edit() -> None:
    def h(ctx: SiteContext) -> str:
        return routing.config_hash(routing.serialize(routing.table(ctx)))

    base = h(context((binding("a"),)))
    assert base == h(context((binding("a"),)))
    assert base != h(context((binding("a", unit="degF"),)))
    assert base != h(context((binding("a", thresholds={"warningHigh": 30}),)))


def test_statefulset_mounts_routing_and_rolls_on_hash() -> None:
    ctx = context()
    sts = bridge_statefulset(ctx, "abc123")
    assert sts["metadata"]["name"] == "dtwin-bridge-hq"
    assert sts["metadata"]["namespace"] == "demo"
    assert "replicas" not in sts["spec"], "the HPA owns replicas"
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate"}
    tpl = sts["spec"]["template"]
    assert tpl["metadata"]["annotations"] == {names.CONFIG_HASH_ANNOTATION: "abc123"}
    assert sts["spec"]["selector"]["matchLabels"].items() <= tpl["metadata"]["labels"].items()
    (c,) = tpl["spec"]["containers"]
    assert c["image"] == "dtwin/bridge:test"
    assert {"name": "DTWIN_BRIDGE_SITE", "value": "hq"} in c["env"]
    assert tpl["spec"]["volumes"] == [{"name": "routing", "configMap": {"name": "dtwin-bridge-hq-routing"}}]


def test_bridge_replicas_have_stable_identities() -> None:
    """A restarted replica must come back under its old MQTT client id, `dtwin-bridge-<site>-<hostname>`.

    The broker redelivers a persistent session's unacknowledged QoS 1 messages only to the same client
    id; a Deployment's replacement pod has a new random name and would strand them.
    """
    sts = bridge_statefulset(context(), "x")
    assert (sts["apiVersion"], sts["kind"]) == ("apps/v1", "StatefulSet")  # pods dtwin-bridge-hq-0, -1, ...
    assert sts["spec"]["serviceName"] == bridge_service(context())["metadata"]["name"]
    assert sts["spec"]["podManagementPolicy"] == "Parallel"  # scale without waiting on ordinals
    pod = sts["spec"]["template"]["spec"]
    # The pod's hostname is its name (dtwin-bridge-hq-<ordinal>) only while nothing overrides it ...
    assert not {"hostname", "subdomain", "setHostnameAsFQDN"} & pod.keys()
    (c,) = pod["containers"]
    # ... and the bridge names itself by hostname only while the env does not name it.
    assert not {"DTWIN_BRIDGE_REPLICA", "DTWIN_BRIDGE_CLIENT_ID"} & {e["name"] for e in c["env"]}
    assert Settings.model_fields["replica"].default_factory is socket.gethostname
    assert (
        Settings(replica="dtwin-bridge-hq-0", client_id=None).mqtt_client_id("hq")
        == "dtwin-bridge-hq-dtwin-bridge-hq-0"
    )


def test_bridge_serves_metrics_and_probes_on_the_port_the_pod_declares() -> None:
    (c,) = bridge_statefulset(context(), "x")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert c["ports"] == [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    # Not left to the bridge's own default (9465): the probes and the Service use the declared port.
    assert env["DTWIN_BRIDGE_METRICS_PORT"] == str(METRICS_PORT)
    assert c["readinessProbe"]["httpGet"]["port"] == c["livenessProbe"]["httpGet"]["port"] == "metrics"


def test_bridge_pods_run_as_their_own_account_and_heartbeat_in_their_namespace() -> None:
    ctx = context()
    pod = bridge_statefulset(ctx, "x")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "dtwin-bridge-hq"
    (c,) = pod["containers"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
    assert env["DTWIN_BRIDGE_LEASE_NAMESPACE"] == "metadata.namespace"
    assert (env["DTWIN_BRIDGE_LEASE_POD_NAME"], env["DTWIN_BRIDGE_LEASE_POD_UID"]) == ("metadata.name", "metadata.uid")


def test_bridge_account_may_write_leases_in_its_namespace_and_nothing_else() -> None:
    sa, role, binding_ = bridge_rbac(context())
    assert [(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in (sa, role, binding_)] == [
        ("ServiceAccount", "dtwin-bridge-hq", "demo"),
        ("Role", "dtwin-bridge-hq", "demo"),
        ("RoleBinding", "dtwin-bridge-hq", "demo"),
    ]
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": list(LEASE_VERBS)}
    ]
    assert set(LEASE_VERBS) == {"create", "patch", "delete"}  # what dtwin_bridge.lease does, no more
    assert binding_["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dtwin-bridge-hq"}
    assert binding_["subjects"] == [{"kind": "ServiceAccount", "name": "dtwin-bridge-hq", "namespace": "demo"}]


def test_service_selects_bridge_pods_and_hpa_uses_site_scaling() -> None:
    ctx = context()
    svc, hpa = bridge_service(ctx), bridge_hpa(ctx)
    pod_labels = bridge_statefulset(ctx, "x")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "dtwin-bridge-hq"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


def test_children_are_complete_labelled_and_deterministic() -> None:
    ctx = context((binding("a"),))
    children = site_children(ctx)
    assert [(c["kind"], c["metadata"]["name"]) for c in children] == [
        ("ServiceAccount", "dtwin-bridge-hq"),
        ("Role", "dtwin-bridge-hq"),
        ("RoleBinding", "dtwin-bridge-hq"),
        ("ConfigMap", "dtwin-bridge-hq-routing"),
        ("Service", "dtwin-bridge-hq"),
        ("StatefulSet", "dtwin-bridge-hq"),
        ("HorizontalPodAutoscaler", "dtwin-bridge-hq"),
        ("ConfigMap", "dtwin-dashboard-hq"),
    ]
    for c in children:
        assert c["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "dtwin-operator"
        assert c["metadata"]["labels"]["dtwin.io/site"] == "hq"
    assert children[-1]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(children[-1]["data"]["dtwin-site-hq.json"])["uid"]
    by_kind = {c["kind"]: c for c in children if c["kind"] != "ConfigMap"}
    routing_json = json.loads(children[3]["data"][names.ROUTING_KEY])
    hash_ = by_kind["StatefulSet"]["spec"]["template"]["metadata"]["annotations"][names.CONFIG_HASH_ANNOTATION]
    assert hash_ == routing.config_hash(routing.serialize(routing_json))
    assert site_children(ctx) == children


@pytest.mark.parametrize("site", ["hq", "a-very-long-site-name-of-39-chars-xyz12"])
def test_derived_names_fit_kubernetes_limits(site: str) -> None:
    assert len(site) <= names.MAX_SITE_NAME
    for n in (names.bridge(site), names.routing_configmap(site), names.dashboard_configmap(site)):
        assert len(n) <= 63
    # Labels the StatefulSet controller puts on each bridge pod: the pod name (up to 100 replicas), and the
    # revision `<statefulset>-<hash>` whose hash is up to 10 characters (kubernetes/kubernetes#64023).
    assert len(f"{names.bridge(site)}-99") <= 63
    assert len(f"{names.bridge(site)}-{'h' * 10}") <= 63
    assert names.schema(site).replace("_", "").isalnum()


def test_site_name_limit_is_the_longest_that_fits() -> None:
    assert len(names.bridge("s" * names.MAX_SITE_NAME)) + 1 + 10 == 63
