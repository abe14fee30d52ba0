"""`toolkit list`, `toolkit info`, `toolkit device`: the catalog and this machine, for people and scripts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toolkit import api
from toolkit.cli.options import add_device, add_json
from toolkit.cli.output import console, emit_json, human_size
from toolkit.cli.parsing import Command, CommandParser


def catalog_rows(device: str | None, refresh: bool = False) -> list[dict[str, Any]]:
    """Every model with its best variant for this machine (or the reason none fits), as --json gives them."""
    return [choice.to_dict() for choice in api.select_all(device=device, refresh=refresh)]


def _list_arguments(parser: CommandParser) -> None:
    parser.add_argument("--all", action="store_true", dest="all_variants",
                        help="Show every variant, not only the best one.")
    add_device(parser)
    add_json(parser)


def list_models(args: argparse.Namespace) -> None:
    """The catalog as a table, or JSON."""
    all_variants = args.all_variants
    rows = catalog_rows(args.device)
    if args.json:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table(title=None, show_lines=False)
    for col in ("Alias", "Params", "Variant", "Device", "Size", "Downloaded", "License"):
        table.add_column(col, no_wrap=col != "Variant", overflow="fold")
    dimmed = approximate = False
    for row in rows:
        variants = row["variants"] if all_variants else [v for v in row["variants"] if v["chosen"]]
        if not variants:
            table.add_row(row["alias"], row["parameters"], "[red]none fits[/red]", "", "", "", row["license"])
        for i, v in enumerate(variants):
            name = v["id"] if v["usable"] or not all_variants else f"[dim]{v['id']}[/dim]"
            dimmed |= name.startswith("[dim]")
            approximate |= "size_bytes" in v["unconfirmed"]
            if all_variants and v["chosen"]:
                name = f"[bold]{v['id']}[/bold] *"
            table.add_row(
                row["alias"] if i == 0 else "",
                row["parameters"] if i == 0 else "",
                name,
                f"{v['device'].upper()} {v['execution_provider'].removesuffix('ExecutionProvider')}",
                human_size(v["size_bytes"]) + ("~" if "size_bytes" in v["unconfirmed"] else ""),
                "yes" if v["downloaded"] else "no",
                row["license"] if i == 0 else "",
            )
    out = console()
    out.print(table)
    for row in rows:
        if row["best_variant"] is None:
            from rich.markup import escape

            out.print(f"[red]{escape(row['alias'])}[/red]: {escape(row['reason'])}", soft_wrap=True)
    if all_variants:
        legend = ["* chosen for this machine"]
        if dimmed and out.is_terminal:  # piped text has no dim: the words would point at nothing
            legend.append("dim: not usable here")
        if approximate:
            legend.append("~: approximate size")
        out.print(f"[dim]{'; '.join(legend)}[/dim]")


def _info_arguments(parser: CommandParser) -> None:
    parser.add_argument("alias", metavar="ALIAS", help="Model alias, other name or variant id.")
    add_device(parser)
    add_json(parser)


def info(args: argparse.Namespace) -> None:
    """One model with every variant, for people or as JSON."""
    choice = api.choose(api.catalog().get(args.alias), device=args.device)
    m = choice.manifest
    chosen, reason = (choice.variant.id, choice.line) if choice.variant is not None else (None, choice.reason)
    variants = choice.variants(manifest_order=True)
    for v, var in zip(variants, m.variants, strict=True):
        src = var.source
        v["source"] = {k: getattr(src, k) for k in src.__dataclass_fields__ if getattr(src, k) not in (None, ())}
        v["files"] = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in var.files]
        v["os"] = list(var.os)
        v["notes"] = var.notes
    data = {
        "alias": m.alias,
        "display_name": m.display_name,
        "names": list(m.names),
        "publisher": m.publisher,
        "base_model": m.base_model,
        "license": m.license,
        "license_url": m.license_url,
        "parameters": m.parameters,
        "parameter_count": m.parameter_count,
        "context_length": m.context_length,
        "architecture": m.architecture,
        "task": m.task,
        "reasoning_markers": [m.chat.reasoning_start, m.chat.reasoning_end],
        "chosen_variant": chosen,
        "reason": reason,
        "manifest": m.file,
        "variants": variants,
    }
    if args.json:
        emit_json(data)
        return
    from rich.markup import escape

    out = console()
    out.print(f"[bold]{m.display_name}[/bold] ({m.alias}) by {m.publisher}")
    out.print(f"  also: {', '.join(m.names)}")
    out.print(f"  {m.parameters} parameters, {m.architecture}, context {m.context_length:,} tokens, license {m.license}")
    out.print(f"  [green]{escape(reason)}[/green]")
    for v in variants:
        mark = "*" if v["chosen"] else " "
        out.print(f"\n {mark} [bold]{v['id']}[/bold]  {v['device'].upper()} {v['vendor']} {v['execution_provider']}")
        out.print(f"     {v['quantization']}")
        src = ", ".join(f"{k}={val}" for k, val in v["source"].items())
        out.print(f"     source: {src}")
        size = human_size(v["size_bytes"])
        out.print(f"     size: {size}{' (approximate)' if 'size_bytes' in v['unconfirmed'] else ''}; downloaded: {'yes' if v['downloaded'] else 'no'}")
        out.print(escape(f"     here: {'usable' if v['usable'] else 'not usable'} ({v['why']})"))
        if v["unconfirmed"]:
            out.print(f"     [yellow]not confirmed offline: {', '.join(v['unconfirmed'])}[/yellow]")
        for f in v["files"]:
            out.print(f"     file {f['path']} {human_size(f['size'])} {f['sha256'] or ''}")


def _device_arguments(parser: CommandParser) -> None:
    add_json(parser)
    add_device(parser)
    parser.add_argument("--refresh", action="store_true", help="Probe again instead of using the cached result.")
    # Hidden: replay a recorded machine (a folder as in tests/fixtures/machines) and its providers file.
    parser.add_argument("--replay", type=Path, metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--eps-file", default="eps.json", metavar="NAME", help=argparse.SUPPRESS)


def device_cmd(args: argparse.Namespace) -> None:
    """This machine and the variant each model would get, for people or as JSON."""
    report = api.replay_machine(args.replay, args.eps_file) if args.replay else api.machine(args.refresh)
    installed = set() if args.replay else None  # a recorded machine has nothing downloaded
    choices = [
        {"alias": c.manifest.alias, "variant": c.variant.id if c.variant else None,
         "device": c.variant.device if c.variant else None, "reason": c.line}
        for c in api.select_all(device=args.device, profile=report.profile(), installed=installed)
    ]
    if args.json:
        emit_json({**report.to_dict(), "selection": choices})
        return
    from rich.markup import escape

    out = console()
    cpu = report.cpu
    out.print(f"[bold]{report.os}[/bold] {report.os_version} ({report.arch})")
    cores = f"{cpu.physical_cores or '?'} cores / {cpu.logical_cores or '?'} threads"
    out.print(f"CPU  {cpu.model} ({cpu.vendor}, {cores}); features: {' '.join(cpu.features) or 'unknown'}")
    for kind, items in (("NPU", report.npus), ("GPU", report.gpus)):
        if not items:
            out.print(f"{kind}  none found")
        for a in items:
            driver = " ".join(x for x in (a.driver, a.driver_version) if x) or "none"
            out.print(escape(f"{kind}  {a.name} [{a.vendor}] driver {driver}") + f" [dim]({escape(a.source)})[/dim]")
    for ep in report.execution_providers:
        devs = f" on {', '.join(ep.devices)}" if ep.devices else ""
        note = f" [dim]({ep.note})[/dim]" if ep.note else ""
        out.print(f"EP   {ep.name}{devs} [dim]{ep.source}[/dim]{note}")
    for u in report.unknown:
        out.print(f"[yellow]unknown[/yellow] {u.source}: {u.reason}")
    out.print()
    for c in choices:
        out.print(escape(c["reason"]), soft_wrap=True)


COMMANDS = (
    Command("list", "List the catalog: the best variant of each model for this machine, size, license.",
            _list_arguments, list_models,
            "One row per model: alias, parameters, the variant chosen here, its device, size, whether it is "
            "downloaded, and the license; --all shows every variant."),
    Command("info", "Show one model: every variant, its source, files, sizes and quantization.",
            _info_arguments, info,
            "Also the context length, the license, the names it answers to, and whether each variant runs here."),
    Command("device", "Show the NPUs, GPUs and execution providers found, and the variant each model gets.",
            _device_arguments, device_cmd,
            "The probe result is cached in $TOOLKIT_HOME/device.json; --refresh probes again."),
)
