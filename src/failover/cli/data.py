"""``failover put``, ``get``, ``ls`` and ``rm``: small data commands for operators."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.markup import escape
from rich.table import Table

from failover.cli._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    handle_errors,
    open_storage,
    print_json,
    stderr,
    stdout,
)
from failover.errors import NotFoundError

__all__ = ["get", "ls", "put", "rm"]


def _metadata(pairs: list[str] | None) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            stderr().print(f"[bold red]error:[/] --meta {escape(pair)!r}: use NAME=VALUE")
            raise typer.Exit(EXIT_USAGE)
        metadata[name] = value
    return metadata


def put(
    ctx: typer.Context,
    *,
    key: Annotated[str, typer.Argument(help="Object key.")],
    source: Annotated[str, typer.Argument(help="File to upload, or '-' for standard input.")] = "-",
    content_type: Annotated[
        str | None, typer.Option(help="MIME type (default: guessed from the key).")
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option(help="User metadata NAME=VALUE (repeatable).")
    ] = None,
) -> None:
    """Store an object on every replica (acknowledged per the write policy)."""
    metadata = _metadata(meta)
    with handle_errors():
        store = open_storage(ctx)
        with store:
            if source == "-":
                info = store.put(
                    key,
                    typer.get_binary_stream("stdin"),
                    content_type=content_type,
                    metadata=metadata,
                )
            else:
                path = Path(source)
                if not path.is_file():
                    stderr().print(f"[bold red]error:[/] {escape(source)}: no such file")
                    raise typer.Exit(EXIT_USAGE)
                with path.open("rb") as handle:
                    info = store.put(key, handle, content_type=content_type, metadata=metadata)
    stdout().print(
        f"stored {escape(info.key)}: {info.size} bytes, sha256 {info.checksum[:16]}…, "
        f"version {info.version}"
    )


def get(
    ctx: typer.Context,
    *,
    key: Annotated[str, typer.Argument(help="Object key.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
) -> None:
    """Read an object (verified against its sha256) to standard output or a file."""
    with handle_errors():
        store = open_storage(ctx)
        with store:
            try:
                reader = store.open(key)
            except NotFoundError:
                stderr().print(f"[bold red]not found:[/] {escape(key)}")
                raise typer.Exit(EXIT_FAILED) from None
            with reader:
                if output is None:
                    _copy(reader, typer.get_binary_stream("stdout"))
                else:
                    with output.open("wb") as handle:
                        _copy(reader, handle)
    if output is not None:
        stderr().print(f"wrote {escape(key)} to {escape(str(output))}")


def _copy(reader: Iterable[bytes], target: BinaryIO) -> None:
    for chunk in reader:
        target.write(chunk)
    target.flush()


def ls(
    ctx: typer.Context,
    *,
    prefix: Annotated[str, typer.Argument(help="List keys under this prefix.")] = "",
    long: Annotated[
        bool, typer.Option("--long", "-l", help="Show size and last modification.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List keys, merged over every replica (each key once, in order)."""
    with handle_errors():
        store = open_storage(ctx)
        with store:
            items = list(store.list(prefix))
    if json_output:
        print_json(
            [
                {
                    "key": i.key,
                    "size": i.size,
                    "last_modified": i.last_modified.isoformat(),
                    "backend": i.backend,
                }
                for i in items
            ]
        )
        return
    if not long:
        out = sys.stdout
        for info in items:
            out.write(info.key + "\n")
        out.flush()
        return
    table = Table(box=None, show_header=True, expand=False)
    table.add_column("size", justify="right")
    table.add_column("last modified")
    table.add_column("key")
    for info in items:
        table.add_row(
            str(info.size), info.last_modified.strftime("%Y-%m-%d %H:%M:%S"), escape(info.key)
        )
    stdout().print(table)


def rm(
    ctx: typer.Context,
    *,
    keys: Annotated[list[str], typer.Argument(help="Object keys to delete.")],
) -> None:
    """Delete objects from every replica (deleting a missing key succeeds)."""
    with handle_errors():
        store = open_storage(ctx)
        with store:
            for key in keys:
                store.delete(key)
                stdout().print(f"deleted {escape(key)}")
