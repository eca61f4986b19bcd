"""Typed job options: one dataclass per job type is the single source of truth.

SAELens's config pattern: every option is a dataclass field with its help text and range in
``field(metadata=...)`` (write it with ``option``); a closed set of values is a ``Literal[...]``
annotation, which ``from_dict`` checks, the CLI offers as a choice and the form as radio buttons. ``JobConfig.from_dict``
validates a plain mapping (unknown key with "did you mean", wrong type, out of range →
``ConfigError`` naming the option), ``to_dict`` gives back what the run folder's
``config.yaml`` stores, and the CLI flags (``command_from_config``) and the Gradio form are
generated from the same fields, so the three cannot drift.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import typer

from workbench.errors import ConfigError
from workbench.jobs.registry import check_options

C = TypeVar("C", bound="JobConfig")
_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, default_factory: Any = _MISSING, min: float | None = None,
           max: float | None = None, cli: bool = True, exclusive_max: bool = False, new_name: bool = False,
           flag: str | None = None) -> Any:
    """A config field: ``help`` is shown by ``--help`` and the form; ``min``/``max`` are checked by
    ``from_dict`` (choices are the field's ``Literal[...]`` type); ``cli=False`` keeps it out of the
    generated flags (``--set`` still works); ``new_name`` marks a name the job creates (a text box
    in forms, never a list of existing ones). An option of a nested group (e.g. ``lora: LoRAOptions``)
    gets the flag ``--<group>-<option>``; ``flag`` names it otherwise (a flag older than the group)."""
    meta = {"help": help, "min": min, "max": max, "cli": cli, "exclusive_max": exclusive_max, "new_name": new_name,
            "flag": flag}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); other types → (type, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal[...]`` annotation (``Literal[...] | None`` too); None for any other type."""
    inner, _ = unwrap_optional(tp)
    return typing.get_args(inner) if typing.get_origin(inner) is Literal else None


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])} values"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a text", dict: "a mapping"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation; integral floats (Gradio numbers) become ints."""
    inner, optional = unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where} must be {_type_name(inner)}, got nothing (null).")
    origin = typing.get_origin(inner)
    if origin is Literal:
        return _choice(value, typing.get_args(inner), where)
    if dataclasses.is_dataclass(inner):
        if isinstance(value, inner):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping of options, got {value!r}.")
        return config_from_dict(inner, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be {_type_name(inner)}, got {value!r}.")
        (item,) = typing.get_args(inner)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or inner is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}.")
        return dict(value)
    ok = {
        bool: isinstance(value, bool),
        int: (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer()),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(inner)
    if ok is None:
        return value
    if not ok:
        raise ConfigError(f"{where} must be {_type_name(inner)}, got {value!r}.")
    return inner(value)


def _choice(value: Any, allowed: tuple[Any, ...], where: str) -> Any:
    """``value`` if it is one of ``allowed`` (2.0 from a form counts as 2, True never as 1), else a
    ConfigError listing the allowed values, with the closest one for a typo."""
    for a in allowed:
        if a == value and isinstance(a, bool) == isinstance(value, bool) and isinstance(a, str) == isinstance(value, str):
            return a
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    raise ConfigError(f"{where} must be one of {', '.join(map(str, allowed))}; got {value!r}.",
                      hint=f"Did you mean {close[0]!r}?" if close else None)


def _check_range(value: Any, meta: Any, where: str) -> None:
    if value is None:
        return
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and value < lo:
            raise ConfigError(f"{where} must be at least {lo}, got {value!r}.")
        if hi is not None and (value >= hi if meta.get("exclusive_max") else value > hi):
            raise ConfigError(f"{where} must be {'below' if meta.get('exclusive_max') else 'at most'} {hi}, got {value!r}.")


def config_from_dict(cls: type, raw: dict[str, Any], what: str, *, moved: dict[str, str] | None = None) -> Any:
    """Build dataclass ``cls`` from ``raw``; missing or null keys take the field's default.

    ``moved`` maps an option's former flat name to its place in a group (``lora_r`` → ``lora.r``):
    a mapping written before the move (an old run's config.yaml, a saved job file) still loads."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} options must be a mapping of option: value, got {raw!r}.")
    raw = move_into_groups(raw, moved or {}, what)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_options(raw, [*fields, *(moved or {})], what)  # a typo of a former name is pointed at it: it still works
    hints = _hints(cls)
    values = {}
    for name, f in fields.items():
        if raw.get(name) is None and not (name in raw and unwrap_optional(hints[name])[1]):
            continue  # the default
        where = f"{what} option {name}"
        values[name] = _coerce(_over_group_default(raw[name], f), hints[name], where)
        _check_range(values[name], f.metadata, where)
    try:
        obj = cls(**values)
    except TypeError as exc:  # a required option is missing
        missing = [n for n, f in fields.items() if n not in values and f.default is _MISSING and f.default_factory is _MISSING]
        raise ConfigError(f"{what}: missing option(s) {', '.join(missing) or '?'}.", hint=str(exc)) from None
    except ConfigError as exc:  # a group that checks itself on construction (SamplingOptions): say where it sits
        raise ConfigError(f"{what}: {exc.message}", hint=exc.hint) from None
    check = getattr(obj, "check", None)
    if callable(check):
        check()
    return obj


def _over_group_default(value: Any, f: dataclasses.Field) -> Any:
    """A group given in part (``sampling: {temperature: 1.5}``) keeps the job's own defaults for the rest
    (RSF samples 48 tokens at top_p 0.95), not the group class's (256 tokens at 0.9)."""
    if not (isinstance(value, dict) and f.default_factory is not _MISSING):
        return value
    default = f.default_factory()
    return {**dataclasses.asdict(default), **value} if dataclasses.is_dataclass(default) else value


def move_into_groups(raw: dict[str, Any], moved: dict[str, str], what: str) -> dict[str, Any]:
    """``raw`` with former flat options put into their groups; the same option given both ways must agree."""
    out = dict(raw)
    for old, new in moved.items():
        if old not in out:
            continue
        group, name = new.split(".")
        inner = out.get(group) or {}
        if not isinstance(inner, dict):
            continue  # the group's own check names the bad value
        value = out.pop(old)
        if name in inner and inner[name] != value:
            raise ConfigError(f"{what} options {old} ({value!r}) and {new} ({inner[name]!r}) disagree: {old} is the former "
                              f"name of {new}.", hint=f"Keep {new} only.")
        out[group] = {**inner, name: value}
    return out


@dataclasses.dataclass
class JobConfig:
    """Base of every job's options; subclasses set ``what`` (the name used in errors)."""

    what: typing.ClassVar[str] = "job"
    # A ready run's options (the Runs form starts filled with them): names that exist on a fresh install.
    example: typing.ClassVar[dict[str, Any]] = {}
    # Options that moved into a group: former flat name → "group.option" (see config_from_dict).
    moved: typing.ClassVar[dict[str, str]] = {}

    @classmethod
    def from_dict(cls: type[C], raw: dict[str, Any] | None) -> C:
        return config_from_dict(cls, dict(raw or {}), cls.what, moved=cls.moved)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> None:
        """Cross-field rules (override); single-field rules live in the field metadata."""

    @classmethod
    def help_of(cls, name: str) -> str:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}[name]


def parsed(cls: type[C], config: C | dict[str, Any]) -> C:
    """``config`` as a ``cls`` instance: job validators accept the typed config (what
    ``JobType.normalise`` passes) or a plain mapping (direct callers: scripts, benchmarks)."""
    return config if isinstance(config, cls) else cls.from_dict(config)


def cli_fields(cls: type) -> list[dataclasses.Field]:
    """Fields that become command-line flags: scalar types (lists and mappings go through --set)."""
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        inner, _ = unwrap_optional(hints[f.name])
        if f.metadata.get("cli", True) and (inner in (int, float, str, bool) or literal_choices(inner)):
            out.append(f)
    return out


def group_flags(cls: type) -> dict[str, dict[str, tuple[str, Any, str]]]:
    """The flags of ``cls``'s option groups (fields typed as a dataclass, e.g. ``sae: SAESpec``):
    ``{group: {flag_name: (option, type, help)}}``, help showing the group's own default."""
    hints = _hints(cls)
    out: dict[str, dict[str, tuple[str, Any, str]]] = {}
    for f in dataclasses.fields(cls):
        inner, _ = unwrap_optional(hints[f.name])
        if not (dataclasses.is_dataclass(inner) and f.metadata.get("cli", True)):
            continue
        defaults = f.default_factory() if f.default_factory is not _MISSING else None  # e.g. RSF samples 48 tokens, not 256
        inner_hints = _hints(inner)
        out[f.name] = {g.metadata.get("flag") or f"{f.name}_{g.name}": (g.name, inner_hints[g.name], _help_with_default(g, defaults))
                       for g in cli_fields(inner)}
    return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help_with_default(f: dataclasses.Field, group_default: Any = None) -> str:
    help = f.metadata.get("help", "")
    default = getattr(group_default, f.name) if group_default is not None else f.default
    return help if default in (None, _MISSING) else f"{help} [default: {default}]"


def _param(name: str, tp: Any, help: str, flag: str | None = None) -> inspect.Parameter:
    inner, _ = unwrap_optional(tp)
    flag = flag or _flag(name)
    decl = [f"{flag}/--no-{flag[2:]}"] if inner is bool else [flag]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[inner | None, typer.Option(*decl, help=help)])


def command_from_config(cls: type, body: Callable[..., None], *, extra: list[inspect.Parameter] | None = None) -> Callable[..., None]:
    """A typer command whose flags are ``cls``'s CLI fields, its option groups' flags (``group_flags``)
    and ``extra`` parameters. ``body(explicit, nested_values, **extra)`` gets the flags given."""
    hints = _hints(cls)
    params = [_param(f.name, hints[f.name], _help_with_default(f)) for f in cli_fields(cls)]
    own = {p.name for p in params}
    groups: dict[str, dict[str, str]] = {}
    for group, flags in group_flags(cls).items():
        for flag_name, (inner, tp, help) in flags.items():
            if flag_name in own:
                raise ConfigError(f"Flag --{flag_name} of the {group} group clashes with a top-level option.")
            params.append(_param(flag_name, tp, help))
            groups.setdefault(group, {})[flag_name] = inner
    extra = extra or []
    extra_names = {p.name for p in extra}

    def command(**kwargs: Any) -> None:
        explicit = {k: v for k, v in kwargs.items() if k in own}
        nested_values = {g: {inner: kwargs[flag] for flag, inner in m.items()} for g, m in groups.items()}
        body(explicit, nested_values, **{k: v for k, v in kwargs.items() if k in extra_names})

    command.__signature__ = inspect.Signature(params + extra)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params + extra}
    command.__doc__ = body.__doc__
    return command
