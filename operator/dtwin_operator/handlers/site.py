"""Site handlers: every trigger runs the one level-based Site reconcile."""

from __future__ import annotations

from typing import Any

import asyncpg
import kopf

from dtwin_operator import names, runtime
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.db.storage import SchemaConflictError
from dtwin_operator.indexes import gather, one
from dtwin_operator.reconcile.site import context
from dtwin_operator.render.storage import storage_spec
from dtwin_operator.settings import OperatorSettings

SITES = (GROUP, VERSION, "sites")


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    @kopf.on.resume(*SITES, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.create(*SITES, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.update(*SITES, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    async def reconcile(namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        await runtime.of(memo).site(gather(kw), namespace, name)

    @kopf.timer(*SITES, id="drift", registry=registry, interval=cfg.drift_interval, initial_delay=cfg.drift_interval)
    async def drift(namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        await runtime.of(memo).site(gather(kw), namespace, name)

    @kopf.on.event(*SITES, id="gone", registry=registry)
    async def gone(event: dict[str, Any], namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        """Deletion (or its start) re-runs the reconcile, which then marks the Site's Assets as orphaned."""
        if event.get("type") == "DELETED" or kw["meta"].get("deletionTimestamp"):
            await runtime.of(memo).site(gather(kw), namespace, name)

    @kopf.on.delete(*SITES, id="storage", registry=registry, backoff=cfg.error_backoff)
    async def storage(spec: kopf.Spec, namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """deletionPolicy Delete drops the site schema; Retain keeps it (and its claim) for a re-created Site."""
        rt = runtime.of(memo)
        st = SiteSpec.model_validate(spec).storage
        if rt.storage is None:
            return
        if st.deletion_policy == "Retain":
            kopf.info(body, reason="Retained", message=f"kept schema {names.schema(name)} in database {st.database}")
            return
        try:
            existed = await rt.storage.drop(st.database, names.schema(name), namespace, name)
        except SchemaConflictError:
            return  # another Site owns that schema: nothing of ours to drop
        except (OSError, TimeoutError, asyncpg.PostgresError) as e:
            raise kopf.TemporaryError(f"cannot drop {names.schema(name)} yet: {e}", delay=cfg.retry_delay) from e
        if existed:
            kopf.info(body, reason="Dropped", message=f"dropped schema {names.schema(name)} (deletionPolicy Delete)")

    @kopf.timer(
        *SITES,
        id="storage-maintenance",
        registry=registry,
        interval=cfg.maintenance_interval,
        initial_delay=cfg.maintenance_interval,
    )
    async def maintenance(namespace: str, name: str, memo: kopf.Memo, logger: Any, **kw: Any) -> None:
        """New partitions ahead of time, rollup refresh, retention: the housekeeping TimescaleDB does itself."""
        rt, site = runtime.of(memo), one(gather(kw)["sites"], (namespace, name))
        if rt.storage is None or site is None or site.deleting:
            return
        ctx, _, _ = context(site, gather(kw), rt.images)
        result = await rt.storage.maintain(ctx.spec.storage.database, storage_spec(ctx))
        logger.info("maintenance of %s: %s", names.schema(name), result)
