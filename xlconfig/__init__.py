"""The config machinery shared by the agent and the hub: one schema library, one error.

Each config section is a frozen stdlib dataclass whose fields carry their
schema in ``Annotated`` metadata (the strict scalar types below and
xlconfig.markers' ``Field`` and validators, which import pydantic only when a file is
validated). The dataclass is what the code reads (``cfg.mqtt.share_group``);
pydantic only validates a file into it, so code and tests that build a
section directly pay nothing and see plain dataclasses. The default written
on a field is the only copy of it: the example configs are generated from the
same classes (:mod:`xlconfig.example`).

Every problem becomes one line ``<dotted.key>: found <value>, expected <what>``
in one :class:`ConfigError`, all problems of a file together.
"""

from xlconfig.errors import ConfigError, problem
from xlconfig.markers import AfterValidator, BeforeValidator, Field, Strict
from xlconfig.schema import (
    SECTION,
    Bool,
    Expect,
    Float,
    Int,
    NonEmptyPath,
    Str,
    default_of,
    read_yaml,
    validate,
)

__all__ = [
    "SECTION",
    "AfterValidator",
    "BeforeValidator",
    "Bool",
    "ConfigError",
    "Expect",
    "Field",
    "Float",
    "Int",
    "NonEmptyPath",
    "Str",
    "Strict",
    "default_of",
    "problem",
    "read_yaml",
    "validate",
]
