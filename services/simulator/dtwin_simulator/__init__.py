"""dtwin device simulator: a fleet of MQTT devices generated from the same Site/Asset/SensorBinding YAML.

The pure core (`fleet`, `signals`, `faults`, `stream`, `encode`) turns the YAML, a seed and a fault list into a
deterministic, time-ordered stream of `(sim_time_ms, topic, payload)`; `publish` paces that stream onto a real
broker (or stdout) and counts PUBACKs; `main` is the typer CLI (`python -m dtwin_simulator run ...`).
"""
