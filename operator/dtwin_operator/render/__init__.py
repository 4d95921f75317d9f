"""Pure renderers: resolved spec in, manifests/config out. No client, no clock."""
