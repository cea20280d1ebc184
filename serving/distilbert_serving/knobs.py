"""A knob: one ``config.pbtxt`` parameter, defined once as a field of a frozen dataclass.

    precision: str = knob("fp32", "dtype of the weights and activations", choices=("fp32", "bf16", "fp16"))

The field gives the knob's name, type and default; ``knob`` adds its doc and allowed values.
Everything else derives from that one line: export (``distilbert_serving.export``) builds its
command-line option and writes the parameter, and the model parses the parameter at load
(``read_knobs``), refusing a bad value with ``ConfigError``, a configuration error rather than a
request error.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field, fields

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class ConfigError(ValueError):
    """A configuration value the model cannot serve with; the message names it and the fix."""


@dataclass(frozen=True)
class Knob:
    """One parameter: ``name``, ``type`` (str, int or bool), ``default``, ``doc``, allowed values."""

    name: str
    type: type
    default: object
    doc: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    # export's command-line option; None: ``--<name with dashes>``.
    flag: str | None = None

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def parse(self, value) -> object:
        """A parameter value (a config string, or a request's JSON value) as this knob's type, checked."""
        if self.type is bool:
            value = _boolean(self.name, value)
        elif self.type is int:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"parameter {self.name} must be an integer; got {value!r}") from None
        elif self.choices:
            value = str(value).strip().lower()
        self.check(value)
        return value

    def check(self, value) -> None:
        if self.choices and value not in self.choices:
            raise ConfigError(f"parameter {self.name} must be one of {', '.join(self.choices)}; got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"parameter {self.name} must be at least {self.minimum}; got {value!r}")

    def render(self, value) -> str:
        """``value`` as the config string that ``parse`` reads back."""
        if self.type is bool:
            return "true" if value else "false"
        return str(value)


def knob(default, doc: str, *, choices: tuple[str, ...] = (), minimum: int | None = None, flag: str | None = None):
    """A dataclass field that is a knob (see the module docstring)."""
    return field(default=default, metadata={"knob": {"doc": doc, "choices": choices, "minimum": minimum, "flag": flag}})


@functools.cache
def knobs_of(cls) -> tuple[Knob, ...]:
    """The knobs among the fields of dataclass ``cls``, inherited ones first."""
    hints = typing.get_type_hints(cls)
    return tuple(
        Knob(f.name, hints[f.name], f.default, **f.metadata["knob"]) for f in fields(cls) if "knob" in f.metadata
    )


def read_knobs(cls, values: dict) -> dict:
    """The knobs of ``cls`` present in ``values``, parsed and checked; the rest keep their defaults."""
    return {k.name: k.parse(values[k.name]) for k in knobs_of(cls) if k.name in values}


def check_knobs(instance) -> None:
    """Every knob of the dataclass ``instance`` holds an allowed value, or ``ConfigError``."""
    for k in knobs_of(type(instance)):
        k.check(getattr(instance, k.name))


def parameter_values(model_config: dict) -> dict[str, str]:
    """``parameters { key: "k" value { string_value: "v" } }`` of a model config as a plain dict."""
    return {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}


def _boolean(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
        return value.strip().lower() in _TRUE
    raise ConfigError(f"parameter {name} must be a boolean (true/false); got {value!r}")
