"""Schema markers that cost nothing until a config is validated.

The agent's sections are read by a process that runs for years on a Pi Zero,
and pydantic, its core and the schemas built from the sections cost that
process about 8 MB of its RSS (README, "Where the agent's memory goes"). So
nothing a section's module runs at import may import pydantic: the schema sits
in ``Annotated`` metadata of string annotations (``from __future__ import
annotations``), and these markers turn into pydantic's own only when pydantic
evaluates them, in the process that validates (xlconfig.isolated).

- ``Strict``, ``BeforeValidator`` and ``AfterValidator`` are built at import
  (``Int = Annotated[int, Strict()]``) and give pydantic their core schema when
  it asks, as pydantic's classes of the same names do.
- ``Field`` is called only inside annotations, so it can return pydantic's
  ``FieldInfo`` itself, importing pydantic then. A bound shared by several
  fields is an ``annotated_types`` constraint (``Interval``, ``Len``), which
  pydantic reads natively and which imports nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Strict:
    """No coercion: YAML gives numbers and booleans their types, so a quoted "60" is a mistake to report."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return {**handler(source), "strict": True}


@dataclass(frozen=True, slots=True)
class BeforeValidator:
    """``func(raw value)`` runs before the type's own validation; a ValueError is the field's problem."""

    func: Callable[[Any], Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(self.func, handler(source))


@dataclass(frozen=True, slots=True)
class AfterValidator:
    """``func(validated value)`` returns the value kept; a ValueError is the field's problem."""

    func: Callable[[Any], Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.func, handler(source))


def Field(**kwargs: Any) -> Any:
    """pydantic.Field, imported when an annotation is evaluated (never at a section module's import)."""
    from pydantic import Field as field

    return field(**kwargs)
