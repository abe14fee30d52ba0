"""`toolkit download`: parse, call the download engine, render."""

from __future__ import annotations

import argparse
import sys
import time

from toolkit.cli.options import add_device, add_json, add_mirror, add_variant, device_override
from toolkit.cli.output import console, emit_json, human_size
from toolkit.cli.parsing import Command, CommandParser


def _select(alias: str, variant: str | None, device: str | None):
    from catalog import Catalog
    from catalog.selection import select_variant
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


def _download_arguments(parser: CommandParser) -> None:
    parser.add_argument("alias", metavar="ALIAS", help="Model alias or name (see `toolkit list`).")
    add_variant(parser)
    add_device(parser)
    parser.add_argument("--dry-run", action="store_true", help="Explain the choice and the files; fetch nothing.")
    add_mirror(parser)
    parser.add_argument("--force", action="store_true", help="Fetch again even if the snapshot is complete.")
    add_json(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="No progress output.")


def download(args: argparse.Namespace) -> None:
    """Download the chosen variant, or explain the plan with --dry-run."""
    from toolkit.download.api import download_variant, plan_variant
    from toolkit.download.render import for_terminal

    dry_run, mirror, json_out = args.dry_run, args.mirror, args.json
    sel = _select(args.alias, args.variant, args.device)
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
            sel.manifest, sel.variant, for_terminal(args.quiet or json_out), mirror=mirror, force=args.force
        )
    except KeyboardInterrupt:
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


COMMANDS = (
    Command("download", "Download the best variant of a model for this machine: parallel, resumable, verified.",
            _download_arguments, download,
            "Files go to the store ($TOOLKIT_HOME); an interrupted download resumes where it stopped. "
            "--dry-run explains the choice and what would be fetched."),
)
