"""The `portside` command."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from portside import __version__
from portside.config import ConfigError, load_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="portside", message="%(prog)s %(version)s")
def main() -> None:
    """Portside: an OCI Distribution / Docker Registry V2 container registry."""


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--workers", "-w", type=click.IntRange(min=1), help="Worker processes (default: one per CPU).")
def serve(config: str | None, workers: int | None) -> None:
    """Run the registry. CONFIG is a Docker Distribution style config.yml (optional)."""
    from portside import logs, server

    try:
        settings = load_config(config)
        logs.configure(settings.log)
        server.serve(settings, workers)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def config() -> None:
    """Check a configuration before serving it."""


@config.command("check")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def config_check(config: str | None) -> None:
    """Validate CONFIG with the REGISTRY_* overrides, as `serve` reads it, and print the effective configuration
    (defaults filled in, secrets as ***) as YAML; exit 1 naming the key when it is invalid."""
    import yaml

    from portside.config.describe import effective

    try:
        settings = load_config(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(yaml.safe_dump(effective(settings), sort_keys=False), nl=False)


@main.command("token-server")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def token_server(config: str | None) -> None:
    """Run the built-in token server alone, on tokenserver.addr (docs/auth.md)."""
    from aiohttp import web

    from portside import logs
    from portside.auth.factory import build_issuer
    from portside.config.schema import split_addr
    from portside.tokenserver import http

    try:
        settings = load_config(config)
        logs.configure(settings.log)
        if settings.tokenserver is None or not settings.tokenserver.addr:
            raise ConfigError("token-server needs tokenserver.addr (and auth.token) in the configuration")
        issuer = build_issuer(settings)
        assert issuer is not None
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    host, port = split_addr(settings.tokenserver.addr)
    web.run_app(http.create_app(issuer, settings.tokenserver.path), host=host or None, port=port, print=None)


@main.group()
def events() -> None:
    """Inspect and replay notification deliveries (the durable outbox)."""


def _store_for(config: str | None) -> tuple[Any, Any]:
    """The configuration and its metadata store (its schema brought up to date, so a fresh one answers)."""
    from portside.service import open_store

    try:
        settings = load_config(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return settings, open_store(settings)


def _status(delivery: Any, threshold: int) -> str:
    if delivery.delivered_at is not None:
        return "delivered"
    return "failed" if delivery.attempts >= threshold else "pending"


@events.command("list")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--status", type=click.Choice(["pending", "failed", "delivered"]), help="Only deliveries in this state.")
@click.option("--endpoint", help="Only deliveries to this endpoint.")
@click.option("--limit", default=1000, show_default=True, help="At most this many, oldest first.")
def events_list(config: str | None, status: str | None, endpoint: str | None, limit: int) -> None:
    """Print deliveries as JSON lines (a delivery is failed once it failed `threshold` times)."""
    settings, store = _store_for(config)
    thresholds = {e.name: e.threshold for e in settings.notifications.endpoints}

    async def run() -> None:

        try:
            await store.migrate()
            wanted = "pending" if status == "failed" else status
            for delivery in await store.outbox.deliveries(wanted, endpoint, limit=limit):
                state = _status(delivery, thresholds.get(delivery.endpoint, 1))
                if status is not None and state != status:
                    continue
                click.echo(
                    json.dumps(
                        {
                            "id": delivery.id,
                            "endpoint": delivery.endpoint,
                            "status": state,
                            "attempts": delivery.attempts,
                            "created_at": delivery.created_at.isoformat(),
                            "next_attempt_at": delivery.next_attempt_at.isoformat(),
                            "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
                            "last_error": delivery.last_error,
                            "event": json.loads(delivery.event),
                        }
                    )
                )
        finally:
            await store.close()

    asyncio.run(run())


@events.command("replay")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--endpoint", help="Only deliveries to this endpoint.")
@click.option("--id", "ids", type=int, multiple=True, help="Deliveries to send again (repeatable).")
@click.option("--failed", is_flag=True, help="Every failed delivery.")
def events_replay(config: str | None, endpoint: str | None, ids: tuple[int, ...], failed: bool) -> None:
    """Queue deliveries again; a running registry sends them within a second."""
    if not ids and not failed:
        raise click.UsageError("name deliveries with --id, or use --failed")
    settings, store = _store_for(config)
    thresholds = {e.name: e.threshold for e in settings.notifications.endpoints}

    async def run() -> int:

        try:
            await store.migrate()
            if ids:
                return int(await store.outbox.replay(ids=list(ids), endpoint=endpoint))
            total = 0
            for name, threshold in thresholds.items():
                if endpoint is None or endpoint == name:
                    total += await store.outbox.replay(endpoint=name, failed_after=threshold)
            return total
        finally:
            await store.close()

    click.echo(f"queued {asyncio.run(run())} deliveries again")


@main.command("import")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Read and verify all, record nothing, print what would be imported.")
@click.option("--repository", "repositories", multiple=True, metavar="NAME", help="Only this repository (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: one per repository, one per skip, a summary.")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1), help="Storage calls at once.")
def import_(config: str | None, dry_run: bool, repositories: tuple[str, ...], as_json: bool, concurrency: int) -> None:
    """Adopt a Docker Distribution store: record the repositories, manifests and tags of its `repositories/`
    tree, under the configured storage, in Portside's metadata store. Reads only; safe to run again."""
    import sys

    from portside.registry.importer import Event, RepositoryDone, Skipped, Summary, import_store
    from portside.service import open_for_import

    try:
        settings = load_config(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    summary = Summary(dry_run=dry_run)
    bar = None if as_json or not sys.stdout.isatty() else _ImportBar(summary)

    def emit(event: Event) -> None:
        if as_json:
            click.echo(json.dumps(event.to_json()))
            return
        line = None
        if isinstance(event, Skipped):
            line = f"skipped {event}"
        elif dry_run and isinstance(event, RepositoryDone) and (event.manifests or event.tags or event.blobs):
            line = f"would import {event.name}: {event.manifests} manifests, {event.tags} tags, {event.blobs} blobs"
        if bar is not None:
            bar.show(line)
        elif line is not None:
            click.echo(line, err=isinstance(event, Skipped))

    async def run() -> None:
        opened = await open_for_import(settings)
        try:
            await import_store(
                opened.driver,
                opened.store,
                opened.options,
                repositories=repositories,
                dry_run=dry_run,
                concurrency=concurrency,
                progress=emit,
                summary=summary,
            )
        finally:
            await opened.close()

    from portside.storage.driver import StorageError

    try:
        if bar is None:
            asyncio.run(run())
        else:
            with bar:
                asyncio.run(run())
    except (StorageError, OSError, ValueError) as exc:
        raise click.ClickException(f"import stopped: {exc} (run it again: what was recorded stays)") from None
    click.echo(json.dumps(summary.to_json()) if as_json else str(summary))
    if summary.errors:
        raise SystemExit(1)


class _ImportBar:
    """A progress bar on the terminal (stderr): repositories, manifests and manifest bytes verified so far,
    read from the live summary at every refresh."""

    def __init__(self, summary: Any) -> None:
        from rich.console import Console
        from rich.filesize import decimal
        from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.text import Text

        class Counts(ProgressColumn):
            def render(self, task: Any) -> Text:
                s = summary
                return Text(
                    f"{s.repositories} repositories, {s.manifests + s.manifests_present} manifests, "
                    f"{decimal(s.bytes_verified)} verified, {sum(s.skipped.values())} skipped"
                )

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]importing"),
            BarColumn(),
            Counts(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.progress.add_task("import", total=None)

    def show(self, line: str | None) -> None:
        if line is not None:
            self.progress.console.print(line, markup=False, highlight=False)

    def __enter__(self) -> _ImportBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--error-table", is_flag=True, help="Print the Markdown table of each route's error codes instead.")
def openapi(config: str | None, error_table: bool) -> None:
    """Print the OpenAPI 3.1 document of the registry's routes (also served at /openapi.json)."""
    from portside.api.app import settings_from
    from portside.api.openapi import document
    from portside.api.openapi import error_table as table
    from portside.api.routes import debug_routes, registry_routes

    try:
        settings = settings_from(load_config(config))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    routes = registry_routes(settings.token_path, settings.ui_path)
    if error_table:
        click.echo(table(routes), nl=False)
        return
    click.echo(json.dumps(document(routes, debug_routes(settings.metrics_path)), indent=2))


class _Progress:
    """A progress display on a terminal (rich), nothing elsewhere: phases with how many items each has done."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        if enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed:,}"),
                TimeElapsedColumn(),
                transient=True,
            )

    def __enter__(self) -> _Progress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, phase: str, done: int) -> None:
        if self._progress is None:
            return
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(phase, total=None)
        self._progress.update(self._tasks[phase], completed=done)


def _interactive(as_json: bool) -> bool:
    import sys

    return not as_json and sys.stderr.isatty()


async def _open_namespace(settings: Any) -> Any:
    from portside.metadata.engine import migrate_if_behind
    from portside.service import open_namespace

    namespace = await open_namespace(settings)
    await migrate_if_behind(namespace.store.db)
    return namespace


@main.command("garbage-collect")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--dry-run", "-d", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option("--delete-untagged", "-m", is_flag=True, help="Also remove manifests that no tag or index keeps.")
@click.option(
    "--sweep-storage", is_flag=True, help="Also walk storage for bytes no record knows (older than gc.reviewafter)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per removed item, then a summary.")
def garbage_collect(
    config: str | None, dry_run: bool, delete_untagged: bool, sweep_storage: bool, as_json: bool
) -> None:
    """Remove what no tag, manifest or recent push keeps (docs/operations.md); safe while the registry serves."""
    from portside.jobs.gc import collector_for
    from portside.registry.sweep import Sweep, SweepOptions
    from portside.service import gc_policy

    try:
        settings = load_config(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    options = SweepOptions(dry_run=dry_run, delete_untagged=delete_untagged, sweep_storage=sweep_storage)

    def removed(kind: str, what: str, size: int) -> None:
        if as_json:  # written buffered: click.echo would flush once a line, and a sweep may print millions
            line = {"removed" if not dry_run else "would_remove": kind, "item": what, "bytes": size}
            sys.stdout.write(json.dumps(line) + "\n")

    async def run() -> Any:
        namespace = await _open_namespace(settings)
        try:
            with _Progress(_interactive(as_json)) as progress:
                sweep = Sweep(collector_for(settings, namespace), gc_policy(settings), options, progress, removed)
                return await sweep.run()
        finally:
            await namespace.close()

    totals = asyncio.run(run())
    sys.stdout.flush()  # the items, before anything click writes
    if as_json:
        summary = {
            k: getattr(totals, k)
            for k in ("manifests", "links", "blobs", "bytes", "repositories", "leftovers", "failures")
        }
        seconds = {phase: round(value, 4) for phase, value in totals.seconds.items()}
        click.echo(json.dumps({"summary": summary, "dry_run": dry_run, "seconds": seconds}))
    else:
        click.echo(totals.line(dry_run))
    if totals.failures:
        raise SystemExit(1)


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--verify-digests", is_flag=True, help="Also read every blob and check it hashes to its digest.")
@click.option(
    "--remove-unknown-bytes", is_flag=True, help="Delete bytes no record knows that are older than gc.reviewafter."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding, then a summary.")
def fsck(config: str | None, verify_digests: bool, remove_unknown_bytes: bool, as_json: bool) -> None:
    """Check that storage holds every recorded blob, whole, and every manifest's content; exit 1 if not."""
    from portside.jobs.gc import collector_for
    from portside.registry.fsck import Fsck

    try:
        settings = load_config(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> Any:
        namespace = await _open_namespace(settings)
        try:
            with _Progress(_interactive(as_json)) as progress:
                check = Fsck(collector_for(settings, namespace), settings.gc.reviewafter, progress)
                return await check.run(verify_digests, remove_unknown_bytes)
        finally:
            await namespace.close()

    report = asyncio.run(run())
    for problem in report.problems:
        if as_json:
            click.echo(json.dumps({"problem": problem.kind, "item": problem.subject, "detail": problem.detail}))
        else:
            click.echo(f"{problem.kind}: {problem.subject}: {problem.detail}")
    for digest, size in report.unknown:
        if as_json:
            click.echo(json.dumps({"notice": "unknown", "item": digest, "bytes": size}))
        else:
            click.echo(f"unknown: {digest}: {size} bytes no record knows")
    summary = {
        "blobs": report.blobs,
        "verified": report.verified,
        "problems": len(report.problems),
        "unknown": len(report.unknown),
        "removed_unknown": report.removed_unknown,
    }
    if as_json:
        click.echo(json.dumps({"summary": summary}))
    else:
        verdict = "healthy" if report.healthy else f"{len(report.problems)} problem(s)"
        click.echo(
            f"checked {report.blobs} blob(s), verified {report.verified}; {verdict}; "
            f"{len(report.unknown)} unknown, {report.removed_unknown} removed"
        )
    if not report.healthy:
        raise SystemExit(1)


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(f"portside {__version__}")
