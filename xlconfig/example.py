"""Commented example configs, generated from the schema so they cannot drift from it.

Each key is written with its description and what it accepts above it. Keys
the example sets (``values``) are live; every other key is a comment showing
its default, so a file made from the example follows the code's defaults
rather than pinning today's. Optional sections are commented out whole.
Uncommenting a line gives a valid value: a key without a default shows its
entry in ``samples``.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xlconfig.schema import FieldSpec, fields_of

WIDTH = 110


def yaml_value(value: Any) -> str:
    """One flow-style YAML value; strings always quoted, since YAML 1.1 reads 21:00 as a number."""
    if value is None:
        return ""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple | frozenset):
        value = list(value)
    return json.dumps(value, ensure_ascii=False)


def render(cls: type, values: Mapping[str, str], samples: Mapping[str, Any], header: str) -> str:
    """The example for the top-level section ``cls``.

    ``values``: dotted key -> YAML text of the keys set live (e.g. ``"@{device_id}"``
    in a template). ``samples``: dotted key -> a value shown, commented, for a key
    whose default is unset.
    """
    used: set[str] = set()
    lines = [f"# {line}".rstrip() for line in header.strip("\n").splitlines()] + [""]
    lines += _section(cls, "", 0, False, values, samples, used)
    unknown = set(values) - used
    if unknown:
        raise KeyError(f"example values for keys the schema does not have: {sorted(unknown)}")
    return "\n".join(lines) + "\n"


def _comment(spec: FieldSpec, pad: str) -> list[str]:
    text = spec.description
    if spec.section is None:
        text = f"{text} [{spec.expected()}]" if text else f"[{spec.expected()}]"
    if not text:
        return []
    return textwrap.wrap(text, WIDTH - len(pad) - 2, initial_indent=f"{pad}# ", subsequent_indent=f"{pad}#   ")


def _section(
    cls: type,
    prefix: str,
    depth: int,
    commented: bool,
    values: Mapping[str, str],
    samples: Mapping[str, Any],
    used: set[str],
) -> list[str]:
    pad = "  " * depth
    out: list[str] = []
    for key, spec in fields_of(cls).items():
        dotted = prefix + key
        if depth == 0 and out:
            out.append("")
        out += _comment(spec, pad)
        if spec.section is not None:
            # An optional section stays a comment unless the example sets a key inside it.
            quiet = commented or (spec.nullable and not any(v.startswith(dotted + ".") for v in values))
            out.append(f"{pad}{'# ' if quiet else ''}{key}:")
            out += _section(spec.section, dotted + ".", depth + 1, quiet, values, samples, used)
            continue
        if dotted in values and not commented:
            used.add(dotted)
            out.append(f"{pad}{key}: {values[dotted]}".rstrip())
            continue
        has_default = (
            spec.field.default is not dataclasses.MISSING or spec.field.default_factory is not dataclasses.MISSING
        )
        if not has_default and not commented:
            raise KeyError(f"the example needs a value for the required key {dotted}")
        shown = samples.get(dotted)
        if shown is None and has_default:
            factory = spec.field.default_factory
            shown = (
                spec.field.default
                if spec.field.default is not dataclasses.MISSING
                else factory()
                if callable(factory)
                else None
            )
        out.append(f"{pad}# {key}: {yaml_value(shown)}".rstrip())
    return out
