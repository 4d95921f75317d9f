"""dtwin's API gateway: REST over the site schemas with authentication, per-site authorization and an audit log."""
