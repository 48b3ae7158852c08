"""Logging set-up from `log:`: level, text/json/logstash formatter and constant fields on every line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from portside.config.schema import Log

LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, Any], logstash: bool = False) -> None:
        super().__init__()
        self.fields = fields
        self.logstash = logstash

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created, UTC).isoformat()
        out: dict[str, Any] = {"@timestamp": time, "@version": "1"} if self.logstash else {"time": time}
        # Logstash events carry their text in `message` (as Docker Distribution's logstash formatter writes it).
        out.update({"level": record.levelname.lower(), "logger": record.name})
        out["message" if self.logstash else "msg"] = record.getMessage()
        out.update(self.fields)
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.suffix = "".join(f" {k}={v}" for k, v in fields.items())

    def format(self, record: logging.LogRecord) -> str:
        # One record, one line: a message or traceback that spans lines is written with its newlines escaped, so
        # line-based log shippers and `log.fields` at the end of each line still hold.
        return super().format(record).replace("\n", "\\n") + self.suffix


def configure(log: Log) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log.formatter == "text":
        handler.setFormatter(TextFormatter(log.fields))
    else:
        handler.setFormatter(JsonFormatter(log.fields, logstash=log.formatter == "logstash"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[log.level])
    # Alembic announces each of its plugins at info on every start; only a debug log wants them.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.DEBUG if log.level == "debug" else logging.WARNING)
    access = logging.getLogger("portside.access")
    access.disabled = log.accesslog.disabled
