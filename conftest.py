"""Root pytest configuration: loads the local control plane fixtures (`control_plane`, `kubeconfig`)
and the real PostgreSQL / Mosquitto fixtures (`postgres_server`, `pg_dsn`, `mosquitto_server`)."""

pytest_plugins = ["dtwin_localcp.pytest_plugin", "dtwin_localcp.services_plugin"]
