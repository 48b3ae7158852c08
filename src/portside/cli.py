"""The `portside` command."""

from __future__ import annotations

import click

from portside import __version__
from portside.config import ConfigError, load_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(f"portside {__version__}")
