"""What a Site's database schema is made of: its StorageSpec and the registry rows from its CRs.

Pure: the Site context in, plain values out; `db/storage.py` writes them.
"""

from __future__ import annotations

from typing import Any

from dtwin_core import units
from dtwin_core.schema import StorageSpec
from dtwin_operator import names
from dtwin_operator.render.context import SiteContext


def storage_spec(ctx: SiteContext) -> StorageSpec:
    st = ctx.spec.storage
    return StorageSpec(
        schema=names.schema(ctx.name),
        chunk_interval_hours=st.chunk_interval_hours,
        retention_days=st.retention_days,
        compress_after_days=st.compress_after_days,
        timezone=ctx.spec.location.timezone,
    )


def asset_rows(ctx: SiteContext) -> list[dict[str, Any]]:
    rows = []
    for a in ctx.assets:
        where = a.spec.location
        rows.append(
            {
                "name": a.name,
                "kind": a.spec.kind,
                "display_name": a.spec.display_name,
                "floor": where.floor,
                "zone": where.zone,
                "x": where.position.x,
                "y": where.position.y,
                "z": where.position.z,
                "criticality": a.spec.criticality,
            }
        )
    return rows


def sensor_rows(ctx: SiteContext) -> list[dict[str, Any]]:
    return [
        {
            "name": b.name,
            "asset": b.spec.asset_ref,
            "metric": b.spec.metric,
            "unit": b.spec.unit,
            "canonical_unit": units.canonical(b.spec.unit),
            "topic": b.spec.topic,
            "format": b.spec.payload_format,
        }
        for b in ctx.bindings
    ]
