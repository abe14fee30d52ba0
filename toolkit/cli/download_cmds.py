"""`toolkit download`, `toolkit cache ...`, `toolkit mirror ...`: parse, call the library, render."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit.cli.output import console, emit_json, human_size

JsonOpt = Annotated[bool, typer.Option("--json", help="Write JSON for scripts.")]
MirrorOpt = Annotated[
    str | None, typer.Option("--mirror", help="Try this toolkit mirror first (default: $TOOLKIT_MIRROR).")
]


def _select(alias: str, variant: str | None, device: str | None):
    from catalog import Catalog
    from catalog.selection import select_variant
    from toolkit.cli.catalog_cmds import device_override
    from toolkit.device import current_profile
    from toolkit.paths import installed_variant_ids

    manifest = Catalog.load().get(alias)
    return select_variant(
        manifest,
        current_profile(),
        installed_variant_ids(),
        device_override=device_override(device),
        variant_override=variant,
    )


def download(
    alias: Annotated[str, typer.Argument(help="Model alias or name (see `toolkit list`).")],
    variant: Annotated[str | None, typer.Option("--variant", help="Download this variant id.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Only npu, gpu or cpu variants.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Explain the choice and the files; fetch nothing.")
    ] = False,
    mirror: MirrorOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Fetch again even if the snapshot is complete.")
    ] = False,
    json_out: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Download the best variant of a model for this machine: parallel, resumable, verified."""
    from toolkit.download.api import download_variant, plan_variant
    from toolkit.download.render import for_terminal

    sel = _select(alias, variant, device)
    if dry_run:
        if not json_out:  # the choice is explained even when the source cannot be reached
            console().print(sel.line(), soft_wrap=True)
        plan = plan_variant(sel.manifest, sel.variant, mirror=mirror)
        files = [
            {
                "path": f.path,
                "size": f.size,
                "sha256": f.sha256,
                "in_store": f.in_store,
                "partial_bytes": f.partial_bytes,
            }
            for f in plan.files
        ]
        data = {
            "alias": sel.manifest.alias,
            "variant": sel.variant.id,
            "reason": sel.reason,
            "source": plan.resolved.source,
            "origin": plan.resolved.origin,
            "revision": plan.resolved.revision,
            "complete": plan.complete,
            "bytes_to_fetch": plan.bytes_to_fetch,
            "free_bytes": plan.free_bytes,
            "files": files,
        }
        if json_out:
            return emit_json(data)
        out = console()
        out.print(f"source: {plan.resolved.source} {plan.resolved.origin} @ {plan.resolved.revision}")
        for f in files:
            state = (
                "in store"
                if f["in_store"]
                else (f"partial {human_size(f['partial_bytes'])}" if f["partial_bytes"] else "to fetch")
            )
            out.print(f"  {f['path']}  {human_size(f['size'])}  {state}")
        verdict = "already complete" if plan.complete else f"would fetch {human_size(plan.bytes_to_fetch)}"
        out.print(f"{verdict}; {human_size(plan.free_bytes)} free")
        return
    t0 = time.monotonic()
    try:
        snap, report = download_variant(
            sel.manifest, sel.variant, for_terminal(quiet or json_out), mirror=mirror, force=force
        )
    except KeyboardInterrupt:
        # sys.exit, not typer.Exit: with standalone_mode=False typer turns Ctrl-C into a return value
        print("interrupted: the partial download is kept; run the same command to resume", file=sys.stderr)
        sys.exit(130)
    data = {
        "alias": sel.manifest.alias,
        "variant": sel.variant.id,
        "reason": sel.reason,
        "path": str(snap),
        "already_complete": report is None,
        "seconds": round(time.monotonic() - t0, 3),
    }
    if report is not None:
        data.update(
            source=report.source,
            revision=report.revision,
            fetched_bytes=report.fetched_bytes,
            resumed_bytes=report.resumed_bytes,
            fetched_files=report.fetched_files,
            reused_files=report.reused_files,
            files=[{"path": f.path, "size": f.size, "sha256": f.sha256} for f in report.files],
        )
    if json_out:
        return emit_json(data)
    note = "already downloaded" if report is None else f"{len(report.files)} file(s) verified"
    console(stderr=False).print(f"{sel.variant.id}: {note} -> {snap}")


cache_app = typer.Typer(help="What is on disk: list, verify, remove, prune.", no_args_is_help=True)


@cache_app.command("list")
def cache_list(json_out: JsonOpt = False) -> None:
    """Downloaded variants with their size and when they were last used."""
    from toolkit.store.blobs import Store
    from toolkit.store.cache import list_cached

    store = Store()
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
        for c in list_cached(store)
    ]
    if json_out:
        return emit_json({"store": str(store.root), "variants": rows})
    out = console()
    if not rows:
        out.print(f"nothing downloaded yet ({store.root})")
        return
    for r in rows:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["last_used"])) if r["last_used"] else "?"
        out.print(f"{r['variant']:<48} {human_size(r['size']):>10}  last used {used}")
    out.print(f"store: {store.root}")


@cache_app.command("verify")
def cache_verify(
    variant: Annotated[list[str] | None, typer.Argument(help="Variant ids (default: all).")] = None,
    repair: Annotated[bool, typer.Option("--repair", help="Fetch damaged files again.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-hash downloaded files against their recorded sha256; exit 6 if any is damaged (and not repaired)."""
    from catalog.errors import IntegrityError
    from toolkit.download.api import repair_variant
    from toolkit.download.render import for_terminal
    from toolkit.paths import installed_variant_ids
    from toolkit.store.blobs import Store
    from toolkit.store.cache import verify_variant

    store = Store()
    ids = list(variant or sorted(installed_variant_ids(store.root)))
    results = []
    for vid in ids:
        r = verify_variant(store, vid)
        repaired = bool(not r.ok and repair and repair_variant(r, for_terminal(json_out)))
        results.append(
            {"variant": vid, "files": r.checked, "ok": r.ok, "problems": r.problems, "repaired": repaired}
        )
    if json_out:
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


@cache_app.command("remove")
def cache_remove(
    variant: Annotated[list[str], typer.Argument(help="Variant ids to remove (see `toolkit cache list`).")],
    json_out: JsonOpt = False,
) -> None:
    """Delete downloaded variants and the files no other variant shares."""
    from toolkit.store.blobs import Store
    from toolkit.store.cache import remove_variant

    store = Store()
    freed = {vid: remove_variant(store, vid) for vid in variant}
    if json_out:
        return emit_json({"removed": list(freed), "freed_bytes": sum(freed.values())})
    console().print(f"removed {', '.join(freed)}; freed {human_size(sum(freed.values()))}")


@cache_app.command("prune")
def cache_prune(
    unused_days: Annotated[
        float | None, typer.Option("--unused-days", help="Also remove variants unused this long.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Reclaim space: unreferenced blobs, stale partial downloads, unfinished snapshots."""
    from toolkit.store.blobs import Store
    from toolkit.store.cache import collect_garbage

    r = collect_garbage(Store(), unused_days=unused_days, dry_run=dry_run)
    data = {
        "dry_run": dry_run,
        "removed_variants": r.removed_variants,
        "removed_blobs": r.removed_blobs,
        "removed_partials": r.removed_partials,
        "freed_bytes": r.freed_bytes,
    }
    if json_out:
        return emit_json(data)
    verb = "would free" if dry_run else "freed"
    console().print(
        f"{verb} {human_size(r.freed_bytes)}: {len(r.removed_variants)} variant(s), "
        f"{r.removed_blobs} blob(s), {r.removed_partials} partial download(s)"
    )


mirror_app = typer.Typer(
    help="Serve or export the local store so a fleet downloads from one place.", no_args_is_help=True
)


@mirror_app.command("serve")
def mirror_serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 8765,
) -> None:
    """Serve the store over HTTP (Hub-compatible subset: revision API, resolve/ with Range, ETag, sha256)."""
    from toolkit.mirror.server import serve
    from toolkit.store.blobs import Store

    server = serve(Store(), host, port)
    print(
        f"serving {server.store.root} at {server.url} (set TOOLKIT_MIRROR={server.url} on clients)",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


@mirror_app.command("export")
def mirror_export(
    dest: Annotated[Path, typer.Argument(help="Folder to write (served by any static web server).")],
    variant: Annotated[list[str] | None, typer.Option("--variant", help="Only these variant ids.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the mirror layout as static files (hard links where possible)."""
    from toolkit.mirror.export import export
    from toolkit.store.blobs import Store

    r = export(Store(), dest, set(variant) if variant else None)
    data: dict[str, Any] = {
        "dest": str(dest),
        "variants": r.variants,
        "files": r.files,
        "linked": r.linked,
        "copied": r.copied,
        "bytes_written": r.bytes,
    }
    if json_out:
        return emit_json(data)
    console().print(
        f"exported {len(r.variants)} variant(s), {r.files} file(s) to {dest} "
        f"({r.linked} linked, {r.copied} copied)"
    )


def register(app: typer.Typer) -> None:
    app.command("download")(download)
    app.add_typer(cache_app, name="cache")
    app.add_typer(mirror_app, name="mirror")
