"""Settings from environment variables. Each service's settings are a frozen
dataclass whose defaults are the only place a default is written; `from_env`
reads every field from `<PREFIX>_<FIELD>` (or the name a field gives itself)."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

# Where each service listens by default; its clients default to the same address.
LEDGER_ADDRESS = "127.0.0.1:50051"
GAMES_ADDRESS = "127.0.0.1:50052"
CAMPAIGNS_ADDRESS = "127.0.0.1:50053"
REWARDS_ADDRESS = "127.0.0.1:50054"
PROGRESS_ADDRESS = "127.0.0.1:50055"
GATEWAY_ADDRESS = "127.0.0.1:8080"
# Where each service serves its Prometheus metrics by default (GET /metrics).
GATEWAY_METRICS_ADDRESS = "127.0.0.1:9450"
LEDGER_METRICS_ADDRESS = "127.0.0.1:9451"
GAMES_METRICS_ADDRESS = "127.0.0.1:9452"
CAMPAIGNS_METRICS_ADDRESS = "127.0.0.1:9453"
REWARDS_METRICS_ADDRESS = "127.0.0.1:9454"
PROGRESS_METRICS_ADDRESS = "127.0.0.1:9455"
# How long figures read from a database for a scrape are reused.
METRICS_CACHE_SECONDS = 10.0

S = TypeVar("S", bound="ServiceSettings")


class ConfigError(ValueError):
    pass


def setting(default: Any, env: str) -> Any:
    """A field read from the environment variable `env` instead of the prefixed name."""
    return dataclasses.field(default=default, metadata={"env": env})


def _parse(name: str, raw: str, hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if raw == "":
            return None
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    try:
        if hint is bool:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        return hint(raw)
    except ValueError as error:
        raise ConfigError(f"{name} must be a {hint.__name__}, got {raw!r}") from error


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """What every service reads; subclasses add theirs and set `env_prefix`."""

    env_prefix: ClassVar[str] = ""
    log_level: str = setting("info", "LOG_LEVEL")
    # Log format on the terminal: "console" (readable, coloured) or "json";
    # "auto" is console on a terminal and JSON otherwise.
    log_format: str = setting("auto", "LOG_FORMAT")
    # JSON lines are also appended here when set (`make run` sets ./var/logs/<service>.log).
    log_file: Path | None = setting(None, "LOG_FILE")
    shutdown_grace_seconds: float = setting(5.0, "SHUTDOWN_GRACE_SECONDS")
    # Where Prometheus scrapes the service ("host:port", port 0 for any free one);
    # "" or "0" serves no metrics. Each service sets its default (the addresses above).
    metrics_listen: str = ""
    # How long figures read from the database (backlogs, budgets, stock) are reused
    # before a scrape reads them again.
    metrics_cache_seconds: float = setting(METRICS_CACHE_SECONDS, "METRICS_CACHE_SECONDS")

    @classmethod
    def env_name(cls, field: dataclasses.Field) -> str:
        return field.metadata.get("env") or f"{cls.env_prefix}_{field.name.upper()}"

    @classmethod
    def from_env(cls: type[S], environ: typing.Mapping[str, str] | None = None) -> S:
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values = {}
        for field in dataclasses.fields(cls):
            name = cls.env_name(field)
            if name in environ:
                values[field.name] = _parse(name, environ[name], hints[field.name])
        return cls(**values)
