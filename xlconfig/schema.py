"""Validating a decoded YAML document into a tree of section dataclasses.

The error lines are built from the schema itself: the dotted key from the
error's location, the expectation from the field's type and bounds (or its
``Expect`` text), so no validator writes its own message and all of them read
alike.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from xlconfig.errors import ConfigError, problem
from xlconfig.markers import BeforeValidator, Strict

if typing.TYPE_CHECKING:
    from pydantic import TypeAdapter

# pydantic is imported by the functions that validate, never at import (xlconfig.markers says why).

T = TypeVar("T")

# Strict scalars: YAML already gives numbers and booleans their types, so a
# quoted "60" or "yes" in a config is a mistake to report, not to coerce.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # an integer is still a number of seconds
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


def _path_text(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise ValueError("a path")
    return value


NonEmptyPath = Annotated[Path, BeforeValidator(_path_text)]
# An empty section (`gpio:` with every line commented out) is YAML null: the defaults.
SECTION = BeforeValidator(lambda value: {} if value is None else value)


@dataclass(frozen=True)
class Expect:
    """What a field's value must be, in the words of the error line, where its type does not say it."""

    text: str


@dataclass(frozen=True)
class FieldSpec:
    name: str  # the attribute
    key: str  # the key in the file (an alias where the attribute cannot be the key, e.g. `from`)
    base: Any  # the type without Annotated and None
    nullable: bool
    bounds: dict[str, float]
    description: str
    expect: str | None
    field: dataclasses.Field[Any]

    @property
    def section(self) -> type | None:
        return _as_section(self.base)

    @property
    def items(self) -> type | None:
        """The section each entry of a list of sections is (``zones: [{name: ...}, ...]``)."""
        return _as_section(_unwrap(get_args(self.base)[0])[0]) if get_origin(self.base) in (tuple, list) else None

    @property
    def values(self) -> type | None:
        """The section each value of a mapping of sections is (``zones: {gate: {...}}``)."""
        return _as_section(_unwrap(get_args(self.base)[1])[0]) if get_origin(self.base) is dict else None

    def expected(self) -> str:
        if self.expect:
            return self.expect
        base = self.base
        if get_origin(base) is Literal:
            text = "one of " + ", ".join(str(a) for a in get_args(base))
        elif base is bool:
            text = "true or false"
        elif base is int:
            text = (_unit(self.name) or "an integer") + _range(self.bounds)
        elif base is float:
            text = (_unit(self.name) or "a number") + _range(self.bounds)
        elif base is str:
            text = "a string"
        elif base is Path:
            text = "a path"
        elif self.section is not None:
            text = "a mapping"
        elif get_origin(base) in (list, tuple, frozenset):
            text = "a list"
        else:
            text = "a valid value"
        return text


def _as_section(base: Any) -> type | None:
    return base if isinstance(base, type) and dataclasses.is_dataclass(base) else None


# The unit a field's name ends in, said in its error line: "seconds 10..1200" rather than "a number 10..1200".
_UNITS = {
    "_s": "seconds",
    "_ms": "milliseconds",
    "_h": "hours",
    "_minutes": "minutes",
    "_mb": "megabytes",
    "_bytes": "bytes",
    "_fps": "times per second",
}


def _unit(name: str) -> str | None:
    return next((unit for suffix, unit in _UNITS.items() if name.endswith(suffix)), None)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _range(b: dict[str, float]) -> str:
    lo = _num(b["ge"]) if "ge" in b else None
    hi = _num(b["le"]) if "le" in b else None
    if lo is not None and hi is not None:
        return f" {lo}..{hi}"
    parts = [
        f"at least {lo}" if lo is not None else "",
        f"more than {_num(b['gt'])}" if "gt" in b else "",
        f"at most {hi}" if hi is not None else "",
        f"less than {_num(b['lt'])}" if "lt" in b else "",
    ]
    words = " and ".join(p for p in parts if p)
    return f", {words}" if words else ""


def _unwrap(hint: Any) -> tuple[Any, list[Any], bool]:
    """(base type, Annotated metadata, whether None is allowed)."""
    meta: list[Any] = []
    nullable = False
    while True:
        if get_origin(hint) is Annotated:
            hint, *extra = get_args(hint)
            meta.extend(extra)
        elif get_origin(hint) in (typing.Union, types.UnionType) and type(None) in get_args(hint):
            rest = [a for a in get_args(hint) if a is not type(None)]
            nullable = True
            hint = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        else:
            return hint, meta, nullable


@cache
def fields_of(cls: type) -> dict[str, FieldSpec]:
    """The file keys of a section, in declaration order."""
    from pydantic.fields import FieldInfo

    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, FieldSpec] = {}
    for f in dataclasses.fields(cls):
        base, meta, nullable = _unwrap(hints[f.name])
        bounds: dict[str, float] = {}
        description, alias, expect = "", None, None
        for m in meta:
            if isinstance(m, FieldInfo):
                description = m.description or description
                alias = m.alias or alias
                inner = m.metadata
            else:
                inner = [m]
            for c in inner:
                for bound in ("ge", "gt", "le", "lt"):
                    if isinstance(getattr(c, bound, None), int | float):
                        bounds[bound] = getattr(c, bound)
                if isinstance(c, Expect):
                    expect = c.text
        key = alias or f.name
        out[key] = FieldSpec(f.name, key, base, nullable, bounds, description, expect, f)
    return out


def default_of(cls: type, name: str) -> Any:
    """A field's default, for code that must agree with the schema without repeating it."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise LookupError(f"{cls.__name__}.{name} has no default")


def _forbid_unknown_keys(cls: type) -> None:
    # Set on every section reachable from the root, so no section can forget it:
    # a misspelt key must be an error, never a silently ignored line.
    from pydantic import ConfigDict

    if "__pydantic_config__" not in cls.__dict__:
        cls.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    for spec in fields_of(cls).values():
        for inner in (spec.section, spec.items, spec.values):
            if inner is not None:
                _forbid_unknown_keys(inner)


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(cls: type) -> TypeAdapter[Any]:
    from pydantic import TypeAdapter

    adapter = _ADAPTERS.get(cls)
    if adapter is None:  # built once per section: pydantic's schema build is the slow part
        _forbid_unknown_keys(cls)
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter


def validate(cls: type[T], doc: Any, prefix: str = "") -> T:
    """``doc`` as an instance of the section ``cls``; ConfigError listing every problem.

    ``prefix`` is the dotted key of the section in its file (e.g. ``vision.``).
    """
    from pydantic import ValidationError

    try:
        return typing.cast(T, _adapter(cls).validate_python({} if doc is None and prefix else doc))
    except ValidationError as exc:
        raise ConfigError(_problems(cls, exc.errors(include_url=False), prefix)) from None


def _problems(cls: type, errors: Sequence[Any], prefix: str) -> list[str]:
    out: dict[str, str] = {}
    for err in errors:
        key, spec, parent = _resolve(cls, err["loc"], err["type"])
        key = prefix + key if key else prefix.rstrip(".")
        if key in out:
            continue  # one line per key: a union's alternatives each report the same value
        kind = err["type"]
        if kind == "missing":
            out[key] = f"{key}: missing, expected {spec.expected() if spec else 'a value'} (required)"
            continue
        if kind in ("unexpected_keyword_argument", "extra_forbidden"):
            expected = f"one of the known keys ({', '.join(fields_of(parent))})"
        elif spec is None:
            expected = "a mapping"
        elif spec.expect is None and kind == "value_error":
            expected = str(err["ctx"]["error"])
        else:
            expected = spec.expected()
        out[key] = problem(key, err.get("input"), expected)
    return list(out.values())


def _resolve(cls: type, loc: Sequence[str | int], kind: str) -> tuple[str, FieldSpec | None, type]:
    """The dotted key an error's location names, the field it falls in, and that field's section."""
    key: str = ""
    spec: FieldSpec | None = None
    current: type | None = cls
    parent: type = cls
    items: type | None = None  # the section the next list index walks into
    values: type | None = None  # the section the next mapping key walks into
    for el in loc:
        if isinstance(el, int):
            key += f"[{el}]"
            current, items = items, None
            continue
        if values is not None:
            key += f".{el}"  # a key of the installer's own (a zone's name), not one of the schema's
            current, values = values, None
            continue
        known = fields_of(current) if current is not None else {}
        if current is not None and el in known:
            parent, spec = current, known[el]
            current, items, values = spec.section, spec.items, spec.values
        elif kind in ("unexpected_keyword_argument", "extra_forbidden") and current is not None and el == loc[-1]:
            parent, spec = current, None
        else:
            break  # a union member's or a validator's tag, not a key
        key += f".{el}" if key else el
    return key, spec, parent


def read_yaml(path: Path, parse: Callable[[Any, str], T]) -> T:
    """Read a YAML file and hand the document to ``parse``; a file that cannot be read is a ConfigError."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"(file): cannot read {path}: {exc.strerror or exc}", str(path)) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"(file): not valid YAML: {str(exc).splitlines()[0]}", str(path)) from None
    return parse(doc, str(path))
