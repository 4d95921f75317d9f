"""Root pytest configuration: loads the local control plane fixtures (`control_plane`, `kubeconfig`)."""

pytest_plugins = ["dtwin_localcp.pytest_plugin"]
