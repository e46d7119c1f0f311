"""The config machinery shared by the agent and the hub: one schema library, one error.

Each config section is a frozen stdlib dataclass whose fields carry their
schema in ``Annotated`` metadata (pydantic's ``Field``, the strict scalar types
below). The dataclass is what the code reads (``cfg.mqtt.share_group``);
pydantic only validates a file into it, so code and tests that build a
section directly pay nothing and see plain dataclasses. The default written
on a field is the only copy of it: the example configs are generated from the
same classes (:mod:`xlconfig.example`).

Every problem becomes one line ``<dotted.key>: found <value>, expected <what>``
in one :class:`ConfigError`, all problems of a file together.
"""

from xlconfig.errors import ConfigError, problem
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
    "Bool",
    "ConfigError",
    "Expect",
    "Float",
    "Int",
    "NonEmptyPath",
    "Str",
    "default_of",
    "problem",
    "read_yaml",
    "validate",
]
