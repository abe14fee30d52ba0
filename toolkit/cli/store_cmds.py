"""`toolkit cache ...` and `toolkit mirror ...`: the local store, for people, scripts and a fleet."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from toolkit import api
from toolkit.cli.options import add_json, number, whole_number
from toolkit.cli.output import console, emit_json, human_size
from toolkit.cli.parsing import Command, CommandParser, Group
from toolkit.cli.progress import for_terminal
from toolkit.errors import IntegrityError, SettingError


def cache_list(args: argparse.Namespace) -> None:
    """Downloaded variants with their size and when they were last used."""
    root = api.store_root()
    rows = [
        {
            "variant": c.variant_id,
            "size": c.size,
            "files": c.files,
            "last_used": c.last_used,
            "source": c.source,
            "revision": c.revision,
            "path": str(c.path),
        }
        for c in api.cached()
    ]
    if args.json:
        return emit_json({"store": str(root), "variants": rows})
    out = console()
    if not rows:
        out.print(f"nothing downloaded yet ({root})")
        return
    for r in rows:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["last_used"])) if r["last_used"] else "?"
        out.print(f"{r['variant']:<48} {human_size(r['size']):>10}  last used {used}")
    out.print(f"store: {root}")


def _add_arguments(parser: CommandParser) -> None:
    parser.add_argument("package", type=Path, metavar="PACKAGE", help="A package folder (genai_config.json).")
    parser.add_argument("--id", required=True, dest="variant_id", metavar="NAME:VERSION",
                        help="Variant id to store it under, e.g. my-model-cpu:1.")
    parser.add_argument("--alias", metavar="ALIAS", help="Model alias (default: the id's name, e.g. my_model_cpu).")
    add_json(parser)


def cache_add(args: argparse.Namespace) -> None:
    """Install a package folder into the store and write the manifest that pins its files."""
    added = api.add_package(args.package, args.variant_id, args.alias, for_terminal(args.json))
    if args.json:
        return emit_json(added.as_dict())
    console().print(f"added {added.variant_id} ({added.files} files, {human_size(added.size_bytes)}) as "
                    f"`toolkit run {added.alias}`; manifest {added.manifest_path}", soft_wrap=True, markup=False)


def _verify_arguments(parser: CommandParser) -> None:
    parser.add_argument("variant", nargs="*", metavar="VARIANT", help="Variant ids (default: all).")
    parser.add_argument("--repair", action="store_true", help="Fetch damaged files again.")
    add_json(parser)


def cache_verify(args: argparse.Namespace) -> None:
    """Re-hash downloaded files; IntegrityError (exit 6) if any is damaged and not repaired."""
    results = [r.to_dict() for r in api.verify(args.variant, repair=args.repair, progress=for_terminal(args.json))]
    if args.json:
        emit_json({"variants": results})
    else:
        out = console()
        for r in results:
            status = "ok" if r["ok"] else ("repaired" if r["repaired"] else "DAMAGED")
            out.print(f"{r['variant']}: {status} ({r['files']} files)")
            for p in r["problems"]:
                out.print(f"  {p}")
    bad = [r["variant"] for r in results if not r["ok"] and not r["repaired"]]
    if bad:
        raise IntegrityError(f"damaged: {', '.join(bad)}; run `toolkit cache verify --repair`")


def _remove_arguments(parser: CommandParser) -> None:
    parser.add_argument("variant", nargs="+", metavar="VARIANT", help="Variant ids to remove (see `toolkit cache list`).")
    add_json(parser)


def cache_remove(args: argparse.Namespace) -> None:
    """Delete downloaded variants and the files no other variant shares."""
    freed, failed = api.remove(args.variant)  # one busy or unknown variant does not stop the others
    if args.json:
        emit_json({"removed": list(freed), "freed_bytes": sum(freed.values()),
                   "failed": [{"variant": vid, "error": str(e), "exit_code": e.exit_code} for vid, e in failed.items()]})
    elif freed:
        console().print(f"removed {', '.join(freed)}; freed {human_size(sum(freed.values()))}")
    if failed:
        for e in list(failed.values())[1:]:
            print(f"error: {e}", file=sys.stderr)
        raise next(iter(failed.values()))


def _prune_arguments(parser: CommandParser) -> None:
    parser.add_argument("--unused-days", type=number(0.0), metavar="DAYS",
                        help="Also remove variants unused this long.")
    parser.add_argument("--dry-run", action="store_true", help="Report only.")
    add_json(parser)


def cache_prune(args: argparse.Namespace) -> None:
    """Reclaim space: unreferenced blobs, stale partial downloads, unfinished snapshots."""
    dry_run = args.dry_run
    r = api.prune(unused_days=args.unused_days, dry_run=dry_run)
    data = {
        "dry_run": dry_run,
        "removed_variants": r.removed_variants,
        "removed_blobs": r.removed_blobs,
        "removed_partials": r.removed_partials,
        "freed_bytes": r.freed_bytes,
        "busy_variants": r.busy_variants,
    }
    if args.json:
        return emit_json(data)
    verb = "would free" if dry_run else "freed"
    console().print(
        f"{verb} {human_size(r.freed_bytes)}: {len(r.removed_variants)} variant(s), "
        f"{r.removed_blobs} blob(s), {r.removed_partials} partial download(s)"
    )
    if r.busy_variants:
        console().print(f"left alone (a download or repair is writing them): {', '.join(r.busy_variants)}")


def _serve_arguments(parser: CommandParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default: %(default)s).")
    parser.add_argument("--port", type=whole_number(0, 65535), default=8765, metavar="PORT",
                        help="Port; 0 takes any free port (default: %(default)s).")


def mirror_serve(args: argparse.Namespace) -> None:
    """Serve the store over HTTP until interrupted."""
    try:
        server = api.mirror_server(args.host, args.port)
    except (OSError, ValueError) as e:  # binding: the port is taken or privileged, the host is not ours
        raise SettingError(_cannot_listen(args.host, args.port, e)) from None
    print(
        f"serving {server.store.root} at {server.url} (set TOOLKIT_MIRROR={server.url} on clients)",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _cannot_listen(host: str, port: int, error: Exception) -> str:
    """Why `mirror serve` cannot listen on host:port, naming the option to change."""
    import errno
    import socket

    host = host if host.isprintable() else repr(host)
    code = getattr(error, "errno", None)
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    if code == errno.EADDRINUSE:
        return (f"--port {port} cannot be used: {host}:{port} is already in use (another `toolkit mirror serve`?); "
                "pick another --port, or 0 for any free one")
    if code == errno.EACCES:
        return f"--port {port} cannot be used: permission denied (ports below 1024 need privileges); pick another --port"
    if isinstance(error, socket.gaierror | UnicodeError) or code == errno.EADDRNOTAVAIL:
        return f"--host {host} cannot be used: {reason} (give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0)"
    return f"--host {host} --port {port} cannot be used: {reason}"


def _export_arguments(parser: CommandParser) -> None:
    parser.add_argument("dest", type=Path, metavar="DIR", help="Folder to write (served by any static web server).")
    parser.add_argument("--variant", action="append", metavar="ID", help="Only this variant id (repeatable).")
    add_json(parser)


def mirror_export(args: argparse.Namespace) -> None:
    """Write the mirror layout as static files (hard links where possible)."""
    dest = args.dest
    r = api.mirror_export(dest, args.variant)
    data: dict[str, Any] = {
        "dest": str(dest),
        "variants": r.variants,
        "files": r.files,
        "linked": r.linked,
        "copied": r.copied,
        "bytes_written": r.bytes,
    }
    if args.json:
        return emit_json(data)
    console().print(
        f"exported {len(r.variants)} variant(s), {r.files} file(s) to {dest} "
        f"({r.linked} linked, {r.copied} copied)"
    )


COMMANDS = (
    Group("cache", "What is on disk: list, add, verify, remove, prune.", (
        Command("list", "List downloaded variants with their size and when they were last used.", add_json, cache_list),
        Command("add", "Put a package folder you built into the store, with a manifest that pins its files.",
                _add_arguments, cache_add,
                "Then `toolkit run ALIAS` runs it and `toolkit mirror serve` publishes it; another machine "
                "given the manifest downloads it with `toolkit download ALIAS --mirror URL`."),
        Command("verify", "Re-hash downloaded files against their recorded sha256.", _verify_arguments, cache_verify,
                "Exits 6 if a file is damaged and not repaired; --repair fetches damaged files again."),
        Command("remove", "Delete downloaded variants and the files no other variant shares.",
                _remove_arguments, cache_remove),
        Command("prune", "Reclaim space: unreferenced blobs, stale partial downloads, unfinished snapshots.",
                _prune_arguments, cache_prune),
    )),
    Group("mirror", "Serve or export the local store so a fleet downloads from one place.", (
        Command("serve", "Serve the store over HTTP for other machines (set TOOLKIT_MIRROR=URL on them).",
                _serve_arguments, mirror_serve,
                "A Hub-compatible subset: the revision API, resolve/ with Range, ETag and sha256."),
        Command("export", "Write the mirror layout as static files (hard links where possible).",
                _export_arguments, mirror_export,
                "Any static web server can then serve the folder as a mirror."),
    )),
)
