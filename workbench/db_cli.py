"""``workbench db info|copy``: where the store is, and moving it between SQLite and PostgreSQL.

A URL is printed only masked (``mask_url``); a password given on the command line is visible
to other local users in the process list, so the URL is best given as WORKBENCH_DATABASE_URL.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli_options import HomeOpt, settings_for
from workbench.store import Store
from workbench.store_copy import COPY_TABLES, copy_store, describe

db_app = typer.Typer(help="The store's database: where it is, and copying it between SQLite and PostgreSQL.", no_args_is_help=True)


@db_app.command("info")
def info(home: HomeOpt = None) -> None:
    """Where the store is (a URL's password masked), its schema version and rows per table."""
    settings = settings_for(home)
    with Store(settings.store_target) as store, store.reading() as conn:
        typer.echo(f"store: {settings.store_location} ({store.dialect}, schema version "
                   f"{conn.execute('SELECT version FROM workbench_schema').fetchone()[0]})")
        for table, _ in COPY_TABLES:
            typer.echo(f"  {table}: {conn.execute(f'SELECT COUNT(*) FROM {table}').fetchone()[0]} rows")


@db_app.command("copy")
def copy(
    to: Annotated[str | None, typer.Option("--to", show_default=False,
                  help="Target: a postgresql:// URL or a SQLite file (default: $WORKBENCH_DATABASE_URL, else the home's SQLite file). "
                       "It must be empty.")] = None,
    source: Annotated[str | None, typer.Option("--from", show_default=False,
                      help="Source: a postgresql:// URL or a SQLite file (default: the home's SQLite file).")] = None,
    home: HomeOpt = None,
) -> None:
    """Copy every dataset, session, vote and lease into an empty store, all or nothing, counts checked.

    Into PostgreSQL: ``WORKBENCH_DATABASE_URL=postgresql://… workbench db copy``. Back into a
    SQLite file: ``workbench db copy --from postgresql://… --to /path/workbench.sqlite``.
    """
    settings = settings_for(home)
    src: str | Path = source or settings.db_path
    dst: str | Path = to or settings.database_url or settings.db_path
    typer.echo(f"copying {describe(src)} → {describe(dst)}")
    start = time.perf_counter()
    counts = copy_store(src, dst, on_table=lambda table, rows: typer.echo(f"  {table}: {rows} rows"))
    typer.echo(f"copied {sum(counts.values())} rows in {time.perf_counter() - start:.1f} s; every table's count matches the source")
