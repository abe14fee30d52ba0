"""`toolkit download`: parse, call the download engine, render."""

from __future__ import annotations

import argparse
import sys
import time

from toolkit import api
from toolkit.cli.options import (
    add_device,
    add_json,
    add_mirror,
    add_require_pinned,
    add_variant,
    download_config,
)
from toolkit.cli.output import console, emit_json, human_size
from toolkit.cli.parsing import Command, CommandParser
from toolkit.cli.progress import for_terminal
from toolkit.errors import DownloadError, SourceError


def _download_arguments(parser: CommandParser) -> None:
    parser.add_argument("alias", metavar="ALIAS", help="Model alias or name (see `toolkit list`).")
    add_variant(parser)
    add_device(parser)
    parser.add_argument("--dry-run", action="store_true", help="Explain the choice and the files; fetch nothing.")
    add_mirror(parser)
    parser.add_argument("--force", action="store_true", help="Fetch again even if the snapshot is complete.")
    add_require_pinned(parser)
    add_json(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="No progress output.")


def download(args: argparse.Namespace) -> None:
    """Download the chosen variant, or explain the plan with --dry-run."""
    dry_run, mirror, json_out = args.dry_run, args.mirror, args.json
    config = download_config(args)
    sel = api.select(args.alias, device=args.device, variant=args.variant)
    if dry_run:
        if not json_out:  # the choice is explained even when the source cannot be reached
            console().print(sel.line, soft_wrap=True)
        try:  # a look, not a transfer: one try each, so an offline machine hears at once
            plan = api.plan(sel, mirror=mirror, config=config, quick=True)
        except (SourceError, DownloadError) as e:
            return _explain_offline(sel, e, json_out)
        files = [
            {
                "path": f.path,
                "size": f.size,
                "sha256": f.sha256,
                "in_store": f.in_store,
                "partial_bytes": f.partial_bytes,
                "digest_from": f.digest_from,
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
            "digests": plan.digests,
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
        done = api.ensure(sel, for_terminal(args.quiet or json_out), mirror=mirror, config=config, force=args.force)
    except KeyboardInterrupt:
        print("interrupted: the partial download is kept; run the same command to resume", file=sys.stderr)
        sys.exit(130)
    snap, report = done.path, done.report
    data = {**done.to_dict(), "seconds": round(time.monotonic() - t0, 3)}
    if json_out:
        return emit_json(data)
    note = "already downloaded" if report is None else f"{len(report.files)} file(s) verified"
    console(stderr=False).print(f"{sel.variant.id}: {note} -> {snap}")
    if report is not None:
        for line in weak_digest_warnings(report.digests):
            print(f"warning: {line}", file=sys.stderr)


def weak_digest_warnings(digests: dict[str, int]) -> list[str]:
    """What the user must know about files no independent digest vouched for."""
    out = []
    if digests.get("mirror"):
        out.append(f"{digests['mirror']} file(s) were checked only against the digests the mirror itself published "
                   "(the manifest pins none and the origin could not be reached); --require-pinned refuses that")
    if digests.get("none"):
        out.append(f"{digests['none']} file(s) had no digest at all and were checked by size only")
    return out


def _explain_offline(sel, error: Exception, json_out: bool) -> None:
    """--dry-run when the source cannot be reached: the choice and what the manifest itself says."""
    v = sel.variant
    src = {k: val for k, val in vars(v.source).items() if val not in (None, (), "")}
    pinned = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in v.files]
    data = {"alias": sel.manifest.alias, "variant": v.id, "reason": sel.reason, "source": src,
            "size_bytes": v.size_bytes, "pinned_files": pinned, "source_error": str(error)}
    if json_out:
        return emit_json(data)
    out = console()
    out.print(f"source: {', '.join(f'{k} {val}' for k, val in src.items())}", soft_wrap=True)
    size = human_size(v.size_bytes) + ("~" if "size_bytes" in v.unconfirmed else "")
    out.print(f"size: {size}; {len(pinned)} file(s) pinned in the manifest" if pinned else f"size: {size}")
    print(f"note: the file list could not be fetched: {error}", file=sys.stderr)


COMMANDS = (
    Command("download", "Download the best variant of a model for this machine: parallel, resumable, verified.",
            _download_arguments, download,
            "Files go to the store ($TOOLKIT_HOME); an interrupted download resumes where it stopped. "
            "--dry-run explains the choice and what would be fetched."),
)
