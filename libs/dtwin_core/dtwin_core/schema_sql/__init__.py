"""SQL text of the per-Site schema, split by concern; `dtwin_core.schema` is the public entry point.

`base` (spec, quoting), `tables` (DDL common to both backends), `partitions` and `rollups` (plain
PostgreSQL), `timescale` (TimescaleDB), `ops` (registry sync, write path, upkeep). Pure: no I/O.
"""
