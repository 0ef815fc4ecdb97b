"""structlog for every service: the request id and rpc name are bound per call by
the server kit. A terminal gets one readable, coloured line per event; anything
else (a pipe, a collector) gets JSON lines; a log file, when set, always gets JSON."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TextIO

import structlog

FORMATS = ("auto", "console", "json")


def _json_line(event_dict: dict) -> str:
    return json.dumps(event_dict, default=str)


class _JsonFile:
    """A processor that appends each event to a file as JSON and passes it on."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", buffering=1, encoding="utf-8")

    def __call__(self, _logger, _method, event_dict: dict) -> dict:
        self._file.write(_json_line(event_dict) + "\n")
        return event_dict


def configure_logging(
    service: str,
    level: str = "info",
    log_format: str = "auto",
    log_file: Path | None = None,
    stream: TextIO | None = None,
) -> None:
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, got {log_format!r}")
    stream = stream or sys.stdout
    console = log_format == "console" or (log_format == "auto" and stream.isatty())

    def add_service(_logger, _method, event_dict):
        event_dict.setdefault("service", service)
        return event_dict

    processors = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if log_file is not None:
        processors += [structlog.processors.format_exc_info, _JsonFile(log_file)]
    if console:
        processors.append(structlog.dev.ConsoleRenderer(colors=stream.isatty()))
    else:
        processors += [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=lambda event, **_: _json_line(event)),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")
