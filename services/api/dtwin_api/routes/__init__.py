"""Thin HTTP routes: parse the request, call `repo`/domain code, shape the answer."""
