"""Layering: ``conf/base.yaml`` <- ``conf/<env>.yaml`` <- ``MEDALLION__*`` <- ``--set``.

Every key of every layer is checked against the schema (:mod:`medallion.config.sections`)
and remembered with the layer it came from, so an error names the file or variable that
holds a bad key, and ``medallion config show --explain`` says why a value is what it is.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from medallion.config.base import DEFAULT_ENV
from medallion.config.sections import Settings
from medallion.errors import ConfigError

ENV_PREFIX = "MEDALLION__"


def conf_dir() -> Path:
    """``$MEDALLION_CONF_DIR``, else ``./conf`` if it holds base.yaml, else the conf shipped in the
    package (``medallion/conf``, in the repository a link to conf/), so an installed wheel has it."""
    if explicit := os.environ.get("MEDALLION_CONF_DIR"):
        return Path(explicit)
    local = Path.cwd() / "conf"
    if (local / "base.yaml").exists():
        return local
    return Path(__file__).resolve().parent.parent / "conf"


def _display(path: Path) -> str:
    """A conf file as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{_display(path)}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{_display(path)}: expected a mapping of sections at the top level")
    return loaded


def _parse_scalar(text: str) -> Any:
    """``"4"`` -> 4, ``"true"`` -> True, ``"5 seconds"`` -> '5 seconds' (YAML's scalar rules)."""
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):
        # ValueError: a date-shaped value that is no date ("2026-13-01"); validation names it.
        return text
    return text if value is None and text.strip() not in ("null", "~") else value


def _field_type(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields.get(name)
    return None if field is None else field.annotation


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_free_mapping(tp: Any) -> bool:
    return typing.get_origin(tp) is dict and _mapped_model(tp) is None


def _mapped_model(tp: Any) -> Any:
    """``dict[str, Model]`` -> ``Model``: a mapping of named sections (e.g. expectations)."""
    if typing.get_origin(tp) is dict:
        value = typing.get_args(tp)[1]
        return value if _is_model(value) else None
    return None


def _child_type(model: Any, part: str) -> Any:
    """The type under ``part``: a field of a section, or the section type of a named mapping."""
    if _is_model(model):
        return _field_type(model, part)
    return _mapped_model(model)


def _valid_keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        if _is_model(field.annotation):
            keys.extend(_valid_keys(field.annotation, dotted + "."))
        elif _mapped_model(field.annotation) is not None:
            keys.extend(_valid_keys(_mapped_model(field.annotation), dotted + ".<name>."))
    return keys


def _split_key(dotted: str, source: str) -> list[str]:
    """Split a dotted key along the schema; the rest of a key under a free mapping stays whole.

    ``spark.conf.spark.sql.ansi.enabled`` -> ``["spark", "conf", "spark.sql.ansi.enabled"]``.
    """
    parts = dotted.split(".")
    model: Any = Settings
    path: list[str] = []
    for index, part in enumerate(parts):
        if not _is_model(model) and _mapped_model(model) is None:
            break
        tp = _child_type(model, part)
        if tp is None:
            _unknown_key(".".join(parts), source)
        path.append(part)
        if _is_free_mapping(tp):
            rest = ".".join(parts[index + 1 :])
            return path + ([rest] if rest else [])
        model = tp
    return path


def _unknown_key(dotted: str, source: str) -> typing.NoReturn:
    valid = _valid_keys()
    close = difflib.get_close_matches(dotted, valid, n=1, cutoff=0.5)
    if not close:
        leaf = dotted.rsplit(".", 1)[-1]
        leaves = {key.rsplit(".", 1)[-1]: key for key in valid}
        close = [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)]
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{source}: unknown key '{dotted}'{hint}")


def _layer_from_tree(tree: Mapping[str, Any], source: str) -> dict[tuple[str, ...], Any]:
    """Flatten a YAML tree into ``{key path: value}``, checking every key against the schema."""
    out: dict[tuple[str, ...], Any] = {}

    def walk(node: Mapping[str, Any], path: list[str], model: Any) -> None:
        for key, value in node.items():
            key = str(key)
            dotted = ".".join([*path, key])
            tp = _child_type(model, key)
            if tp is None:
                _unknown_key(dotted, source)
            if (_is_model(tp) or _mapped_model(tp)) and isinstance(value, Mapping):
                walk(value, [*path, key], tp)
            elif _is_free_mapping(tp) and isinstance(value, Mapping):
                for sub_key, sub_value in value.items():
                    out[(*path, key, str(sub_key))] = sub_value
            else:
                out[(*path, key)] = value

    walk(tree, [], Settings)
    return out


def _layer_from_pairs(pairs: Iterable[tuple[str, str]], source: str) -> dict[tuple[str, ...], Any]:
    return {tuple(_split_key(key, source)): _parse_scalar(value) for key, value in pairs}


def parse_set(option: str) -> tuple[str, str]:
    """``"stream.trigger.kind=once"`` -> ``("stream.trigger.kind", "once")``."""
    key, sep, value = option.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {option!r}: expected key=value, e.g. --set stream.trigger.kind=once")
    return key.strip(), value


def _env_pairs(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    return [
        (name[len(ENV_PREFIX) :].lower().replace("__", "."), value)
        for name, value in sorted(environ.items())
        if name.startswith(ENV_PREFIX)
    ]


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return tree


# --------------------------------------------------------------------------- validation


def _allowed_values(loc: tuple[Any, ...]) -> list[str] | None:
    model: Any = Settings
    tp: Any = None
    for part in loc:
        tp = _child_type(model, str(part))
        if tp is None:
            return None
        model = tp
    if typing.get_origin(tp) is Literal:
        return [str(v) for v in typing.get_args(tp)]
    return None


def _describe(error: Mapping[str, Any], provenance: Mapping[str, str]) -> str:
    loc = tuple(str(p) for p in error["loc"] if not isinstance(p, int))
    dotted = ".".join(loc)
    parent = dotted.rsplit(".", 1)[0] + "."
    # A missing key has no source of its own: its siblings' layer declared the section.
    source = provenance.get(dotted) or next((v for k, v in provenance.items() if k.startswith(parent)), None)
    where = f" (from {source})" if source else ""
    value = error.get("input")
    allowed = _allowed_values(loc)
    if error["type"] == "literal_error" and allowed:
        return f"{dotted}: {value!r} is not one of {', '.join(allowed)}{where}"
    if error["type"] == "extra_forbidden":
        _unknown_key(dotted, source or "conf")
    if error["type"] == "missing":
        return f"{dotted} is required and missing{where}"
    message = error["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    return f"{dotted}: {value!r} is invalid: {message}{where}"


def load_settings(
    env: str | None = None,
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> Settings:
    """Merge base <- env overlay <- ``MEDALLION__*`` variables <- ``--set`` overrides.

    Raises :class:`ConfigError` with one line naming the key, the value and what is allowed.
    """
    environ = os.environ if environ is None else environ
    env = env or environ.get("MEDALLION_ENV") or DEFAULT_ENV
    directory = directory or conf_dir()

    layers: list[tuple[str, dict[tuple[str, ...], Any]]] = []
    base = directory / "base.yaml"
    if base.exists():
        layers.append((_display(base), _layer_from_tree(_read_yaml(base), _display(base))))
    overlay = directory / f"{env}.yaml"
    if overlay.exists():
        layers.append((_display(overlay), _layer_from_tree(_read_yaml(overlay), _display(overlay))))
    elif env != DEFAULT_ENV:
        known = sorted(p.stem for p in directory.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"unknown env '{env}': no {overlay}; known envs: {', '.join(known)}")
    for name, value in _env_pairs(environ):
        layers.append(
            (
                f"${ENV_PREFIX}{name.upper().replace('.', '__')}",
                _layer_from_pairs([(name, value)], "environment"),
            )
        )
    for option in overrides:
        key, value = parse_set(option)
        layers.append((f"--set {key}", _layer_from_pairs([(key, value)], f"--set {key}")))

    merged: dict[tuple[str, ...], Any] = {("env",): env}
    provenance: dict[str, str] = {"env": "--env / MEDALLION_ENV" if env != DEFAULT_ENV else "default"}
    for source, layer in layers:
        for path, value in layer.items():
            # A section replaced by a scalar (or the reverse) drops what was under it.
            for existing in [p for p in merged if p[: len(path)] == path or path[: len(p)] == p]:
                merged.pop(existing)
            merged[path] = value
            provenance[".".join(path)] = source

    try:
        settings = Settings.model_validate(_unflatten(merged))
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0], provenance)) from None
    for key in settings.flat():
        provenance.setdefault(key, provenance.get(key.rsplit(".", 1)[0], "default"))
    settings._provenance = provenance
    return settings
