"""Kopf handlers: thin, level-based; each calls a reconciler."""
