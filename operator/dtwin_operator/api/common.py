"""Building blocks shared by the four dtwin.io/v1alpha1 resource models.

The pydantic models in this package are the single source of truth for the
CRDs: `dtwin_operator.api.crds` turns them into structural OpenAPI schemas
(`crds/*.yaml`), and the operator parses the (already defaulted) specs it
receives with the very same models. Field names are camelCase on the wire and
snake_case in Python. Every field carries a description, because that is what
`kubectl explain` shows to the person writing the YAML.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict

GROUP = "dtwin.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# RFC 1123 label: what Kubernetes accepts as a name of most objects.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


_BASE = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class Model(BaseModel):
    """Base for spec/status models: camelCase aliases, frozen, unknown keys ignored.

    Unknown keys are ignored rather than forbidden because the API server has
    already pruned them against the schema; what remains is what Kopf adds.
    """

    model_config = ConfigDict(**_BASE)

    def wire(self) -> dict[str, Any]:
        """The object as it appears in YAML (camelCase, unset optionals left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def with_rules(*rules: JsonDict) -> ConfigDict:
    """The Model config plus CEL rules on the whole object (`x-kubernetes-validations`)."""
    return ConfigDict(**_BASE, json_schema_extra={"x-kubernetes-validations": list(rules)})


def cel(rule: str, message: str, **extra: str) -> JsonDict:
    """One `x-kubernetes-validations` entry: a CEL rule and the message shown when it fails."""
    return {"rule": rule, "message": message, **extra}


def replica_range(prefix: str) -> JsonDict:
    """CEL rule of an object with minReplicas/maxReplicas (an autoscaled workload)."""
    return cel(
        "self.minReplicas <= self.maxReplicas",
        f"{prefix}.minReplicas must be less than or equal to {prefix}.maxReplicas",
        fieldPath=".minReplicas",
    )


def immutable(what: str, how: str) -> dict[str, Any]:
    """Schema extra that makes a field immutable after creation (a CEL transition rule)."""
    return {"x-kubernetes-validations": [cel("self == oldSelf", f"{what} is immutable; {how}")]}


def ref_field(kind: str, description: str) -> Any:
    """A required, immutable reference to another dtwin object by name in the same namespace."""
    return Field(
        description=description,
        min_length=1,
        max_length=63,
        pattern=NAME_PATTERN,
        json_schema_extra=immutable(
            f"{kind} reference", f"delete and re-create the object to point it at another {kind}"
        ),
    )


def sub(model: type[Model], description: str) -> Any:
    """An optional nested object whose default is the model with all its own defaults filled in.

    Spelled out rather than `{}`: the API server checks a default against the object's CEL
    rules without defaulting inside it first, so `{}` would fail e.g. `self.min <= self.max`.
    """
    return Field(default_factory=model, description=description, json_schema_extra={"default": model().wire()})


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """A Kubernetes-style condition (same shape as metav1.Condition)."""

    type: str = Field(description="Condition type, e.g. Ready, Resolved, BridgeReady.", max_length=64)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word saying why the condition has its status.", max_length=128)
    message: str = Field(default="", description="What happened and, if needed, what to do about it.")
    last_transition_time: str = Field(
        description="When the status last changed (RFC 3339).", json_schema_extra={"format": "date-time"}
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation that the condition was computed from."
    )


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        description="Current state: Ready plus one condition per part the operator manages.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Status(Model):
    """Fields every dtwin status has."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation of the spec this status describes."
    )
    conditions: list[Condition] = conditions_field()
