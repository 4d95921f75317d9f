"""dtwin's benchmarks (`make bench`): not tests, but measurements printed, saved under `.bench/` and plotted.

`dtwin_bench.ingest` is `make bench-ingest`: MQTT -> bridge -> PostgreSQL throughput, loss and latency against
the anchors in `../shared/anchors/`. Pure pieces (`workload`, `report`) are unit-tested in `bench/tests/`; the
rest (`stack`, `site`, `procs`, `plot`) drives real processes.
"""
