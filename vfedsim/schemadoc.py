"""The scenario reference, generated from the pydantic schema in `vfedsim.scenario` (the single source of
every key, type, default and allowed value). The docs site builds its "Scenario reference" page from
`scenario_reference` at build time (docs/hooks.py), so the page cannot drift from the code;
``python -m vfedsim.schemadoc`` prints it.
"""
from __future__ import annotations

import enum
import inspect
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ["scenario_reference", "model_sections"]

_TAGS = ("name", "model")


def _tag(model: type[BaseModel]) -> tuple[str, str] | None:
    """``(tag field, value)`` of a tagged-union member (``name: highway``, ``model: log-distance``)."""
    for tag in _TAGS:
        field = model.model_fields.get(tag)
        if field is not None and typing.get_origin(field.annotation) is typing.Literal:
            values = typing.get_args(field.annotation)
            if len(values) == 1:
                return tag, str(values[0])
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found, todo = [], [annotation]
    while todo:
        a = todo.pop(0)
        if isinstance(a, type) and issubclass(a, BaseModel):
            found.append(a)
        else:
            todo.extend(typing.get_args(a))
    return found


def _type_text(annotation: Any) -> str:
    """A short readable type: ``number > 0``, ``one of: a, b``, ``list of ...``, a section link."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base, *meta = args
        return _type_text(base) + _constraints(meta)
    if origin is typing.Literal:
        return "one of: " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        parts = [a for a in args if a is not type(None)]
        models = [a for a in parts if isinstance(a, type) and issubclass(a, BaseModel)]
        if models and len(models) == len(parts):
            tags = [_tag(m) for m in models]
            if all(tags):
                return f"section, by `{tags[0][0]}`: " + ", ".join(f"`{t[1]}`" for t in tags)
        text = " or ".join(_type_text(a) for a in parts)
        return text + (" or null" if len(parts) < len(args) else "")
    if origin in (list, tuple, set, frozenset):
        inner = [a for a in args if a is not Ellipsis]
        return "list of " + (_type_text(inner[0]) if inner else "values")
    if origin is dict:
        return f"mapping {_type_text(args[0])} -> {_type_text(args[1])}" if args else "mapping"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            tag = _tag(annotation)
            return f"section ({tag[0]}: {tag[1]})" if tag else "section"
        if issubclass(annotation, enum.Enum):
            return "one of: " + ", ".join(f"`{m.value}`" for m in annotation)
        return {"float": "number", "int": "integer", "str": "text", "bool": "true/false",
                "Path": "path"}.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _constraints(meta: Any) -> str:
    """`` > 0``, `` >= 1``, `` (at least 1 items)`` from pydantic's field metadata (annotated-types)."""
    text = ""
    for m in meta:
        for obj in (m, *getattr(m, "metadata", ())):
            for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                value = getattr(obj, attr, None)
                if value is not None:
                    text += f" {sym} {value:g}" if isinstance(value, (int, float)) else f" {sym} {value}"
            if getattr(obj, "min_length", None) is not None:
                text += f" (at least {obj.min_length} items)"
    return text


def _default_text(field: Any) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(section defaults)"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, BaseModel) for v in value):
        return f"{len(value)} entries (see `vfedsim/scenario.py`)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def model_sections(model: type[BaseModel], key: str, *, seen: set[str] | None = None
                   ) -> list[tuple[str, type[BaseModel]]]:
    """``(dotted key, model)`` of ``model`` and every section below it, depth first (tagged-union members
    as ``key[name=value]``)."""
    seen = set() if seen is None else seen
    out = [(key, model)]
    for name, field in model.model_fields.items():
        sub_key = f"{key}.{name}" if key else name
        models = _models_in(field.annotation)
        for sub in models:
            tag = _tag(sub) if len(models) > 1 else None
            label = f"{sub_key} ({tag[0]}: {tag[1]})" if tag else sub_key
            if label in seen:
                continue
            seen.add(label)
            out += model_sections(sub, label, seen=seen)
    return out


def _anchor(key: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in key.lower()).strip("-")


def scenario_reference() -> str:
    """The Markdown page: one table per section of the scenario (key, type and allowed values, default)."""
    from .scenario import Scenario

    lines = [
        "# Scenario reference",
        "",
        "Generated from the schema in `vfedsim/scenario.py` when the docs are built, so it always matches the "
        "code. Every key is optional unless marked **required**; an unknown key is an error that names it and "
        "suggests the closest known one. Any key can be set from the command line with its dotted path: "
        "`--set world.channel.bandwidth_hz=5e5`. Units are in the names (`_m`, `_s`, `_hz`, `_db`, `_dbm`, `_w`, "
        "`_kmh`, `flops_per_s`). Sections chosen by a tag (`name:` or `model:`) list the fields of each "
        "choice separately.",
        "",
    ]
    for key, model in model_sections(Scenario, ""):
        title = key or "top level"
        doc = inspect.cleandoc(model.__doc__ or "") if model.__doc__ and model.__doc__ != BaseModel.__doc__ else ""
        lines += [f"## `{title}`" if key else "## Top level", ""]
        if doc and not doc.startswith("Usage docs:"):
            lines += [doc.replace("``", "`"), ""]
        lines += ["| key | type and allowed values | default |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            kind = (_type_text(field.annotation) + _constraints(field.metadata)).replace("|", "\\|")
            lines.append(f"| `{name}` | {kind} | {_default_text(field).replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(scenario_reference(), end="")
