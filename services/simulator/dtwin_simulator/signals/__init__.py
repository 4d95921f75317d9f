"""Pure value models of the simulated fleet: site conditions, asset physics per family, sensor signals.

`profile` (occupancy, schedule, weather per site), `noise` (seeded, stateless randomness), `base` (the inputs
and outputs of a family), the families `hvac`, `hydronic` and `electrical`, `roles` (a metric name → what it
measures), `model` (lag, noise, counters, fallbacks) and `catalog` (which family and which model for what).
"""
