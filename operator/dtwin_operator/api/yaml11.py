"""YAML output that reads the same in PyYAML and in kubectl/Helm.

kubectl and Helm parse YAML 1.1, where a bare `y`/`n` is a boolean; PyYAML writes
the key `y` (a zone's or position's coordinate) unquoted. Quoting those keeps
`y: 0` from arriving at the API server as `true: 0`.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))


def dump(data: Any, **kwargs: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, **kwargs)


def dump_all(docs: Any, **kwargs: Any) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, **kwargs)
