"""Rendering the UI's pages: one Jinja2 environment over the package's templates, the filters they use
(human sizes, relative times, short digests), and the static files with their content hashes."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from portside.manifest import mediatypes as mt

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(size: int | None) -> str:
    """Binary units, about three significant digits: 512 B, 1.50 KiB, 23.4 MiB, 117 GiB."""
    if size is None:
        return "—"
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def exact_time(when: datetime | str | None) -> str:
    if when is None:
        return ""
    if isinstance(when, str):
        return when
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse(when: datetime | str) -> datetime | None:
    if isinstance(when, datetime):
        return when
    try:
        parsed = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def relative_time(when: datetime | str | None, now: datetime | None = None) -> str:
    """ "3 minutes ago", "in 2 days" (clock skew), "just now"."""
    if when is None:
        return "—"
    moment = _parse(when)
    if moment is None:
        return str(when)
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    ahead = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    for limit, size, unit in (
        (3600, 60, "minute"),
        (86400, 3600, "hour"),
        (86400 * 30, 86400, "day"),
        (86400 * 365, 86400 * 30, "month"),
        (float("inf"), 86400 * 365, "year"),
    ):
        if seconds < limit:
            count = max(1, round(seconds / size))
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {text}" if ahead else f"{text} ago"
    raise AssertionError("unreachable")


def time_element(when: datetime | str | None) -> Markup:
    """A `<time>` with the relative time shown and the exact one on hover (and for screen readers)."""
    if when is None:
        return Markup("—")
    moment = _parse(when)
    iso = moment.astimezone(UTC).isoformat() if moment is not None else str(when)
    exact = exact_time(moment if moment is not None else when)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, exact, relative_time(when))


def short_digest(digest: object) -> str:
    text = str(digest)
    algorithm, _, hexa = text.partition(":")
    return f"{algorithm}:{hexa[:12]}" if hexa else text


_KINDS = {
    mt.OCI_MANIFEST: "OCI image",
    mt.DOCKER_MANIFEST: "Docker image",
    mt.OCI_INDEX: "OCI index",
    mt.DOCKER_MANIFEST_LIST: "Docker manifest list",
}


def media_kind(media_type: str | None, artifact_type: str | None = None) -> str:
    """What a manifest is, in words: an image, an index, or an artifact of some type."""
    if artifact_type and artifact_type not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
        return artifact_label(artifact_type)
    return _KINDS.get(media_type or "", media_type or "—")


_ARTIFACTS = (
    ("signature", "Signature"),
    ("cosign", "Signature"),
    ("notary", "Signature"),
    ("spdx", "SBOM (SPDX)"),
    ("cyclonedx", "SBOM (CycloneDX)"),
    ("sbom", "SBOM"),
    ("in-toto", "Attestation"),
    ("attestation", "Attestation"),
    ("dsse", "Attestation"),
    ("vex", "VEX"),
    ("helm", "Helm chart"),
    ("wasm", "WebAssembly"),
)


def artifact_label(artifact_type: str | None) -> str:
    """A readable name for an artifact type, by what its media type says it is."""
    if not artifact_type:
        return "Untyped"
    lowered = artifact_type.lower()
    for needle, label in _ARTIFACTS:
        if needle in lowered:
            return label
    return artifact_type


def command(words: str | tuple[str, ...] | list[str] | None) -> str:
    """An entrypoint or command as a shell would read it."""
    if not words:
        return ""
    if isinstance(words, str):
        return words
    return " ".join(w if w and all(c.isalnum() or c in "-_./:=@%+," for c in w) else repr(w) for w in words)


# ---------------------------------------------------------------------------------------------- static files


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    version: str


@cache
def assets() -> dict[str, Asset]:
    """The static files, read once; `version` (a content hash) makes their URLs safe to cache for good."""
    found: dict[str, Asset] = {}
    for entry in resources.files("portside.ui").joinpath("static").iterdir():
        if entry.is_file():
            body = entry.read_bytes()
            content_type = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
            if content_type.startswith("text/") or content_type.endswith("javascript"):
                content_type += "; charset=utf-8"
            found[entry.name] = Asset(body, content_type, hashlib.sha256(body).hexdigest()[:16])
    return found


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("portside.ui", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        bytes=human_bytes,
        reltime=relative_time,
        exact=exact_time,
        time=time_element,
        short=short_digest,
        kind=media_kind,
        artifact=artifact_label,
        command=command,
    )
    return env


def render(template: str, **values: Any) -> str:
    return environment().get_template(template).render(**values)
