"""Level-based reconcilers: render, apply, write status. Called by every handler."""
