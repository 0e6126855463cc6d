"""Growth ratios, targets, and the table (console and Markdown)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from benchmarks.context import fmt_seconds

Row = dict[str, Any]


# --- growth ---------------------------------------------------------------------------------


def growth_cost(row: Row) -> float:
    """The cost that must stay flat as the size grows.

    A listing of every stored workflow grows with the store by nature: its cost per stored
    workflow must stay flat. Everything else: the cost per task, workflow or call.
    """
    if row["scenario"] == "management" and row["variant"].startswith("list_all"):
        return float(row["median_s"]) / float(row["size"])
    return float(row["per_unit_s"])


def growth(rows: list[Row]) -> list[Row]:
    """Per (scenario, variant, config): cost at the largest size / cost at the smallest."""
    groups: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row["scenario"], row["variant"], row["config"])].append(row)
    out = []
    for (scenario, variant, config), members in groups.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda r: r["size"])
        small, large = members[0], members[-1]
        ratio = growth_cost(large) / growth_cost(small) if growth_cost(small) > 0 else None
        out.append(
            {
                "scenario": scenario,
                "variant": variant,
                "config": config,
                "smallest": small["size"],
                "largest": large["size"],
                "ratio": ratio,
                "measure": "per stored workflow"
                if scenario == "management" and variant.startswith("list_all")
                else f"per {small['per_unit']}",
                "target": 1.5,
                "met": ratio is not None and ratio <= 1.5,
            }
        )
    return out


# --- targets --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    text: str
    scenario: str
    variant: str
    config: str
    size: int | None
    """The size the target is for; None: the largest measured."""
    field: str
    limit: float
    at_least: bool = False

    def value(self, row: Row) -> float | None:
        value = row.get(self.field)
        return None if value is None else float(value)


TARGETS = [
    Target("chain per-task overhead, memory", "chain", "run", "memory", None, "per_unit_s", 100e-6),
    Target("chain per task, file fsync on", "chain", "run", "file", None, "per_unit_s", 1.5e-3),
    Target(
        "chain per task, file fsync off", "chain", "run", "file-nofsync", None, "per_unit_s", 250e-6
    ),
    Target(
        "one-task workflows/s, file fsync on, sequential",
        "tiny",
        "sequential",
        "file",
        None,
        "rate",
        300,
        at_least=True,
    ),
    Target(
        "one-task workflows/s, file fsync on, 8 threads",
        "tiny",
        "8 threads",
        "file",
        None,
        "rate",
        300,
        at_least=True,
    ),
    Target(
        "list_all() with 100,000 stored workflows, file",
        "management",
        "list_all()",
        "file",
        100_000,
        "median_s",
        0.3,
    ),
    Target(
        "get_status(id) on that store, file",
        "management",
        "get_status(id)",
        "file",
        100_000,
        "median_s",
        1e-3,
    ),
    Target(
        "resume of the 10,000-task chain, file",
        "resume",
        "failed at last task",
        "file",
        10_000,
        "median_s",
        1.0,
    ),
    Target(
        "fan-out 10,000: driver peak memory (MB)", "fanout", "run", "*", 10_000, "peak_rss_mb", 300
    ),
]


def check_targets(rows: list[Row]) -> list[Row]:
    out = []
    for target in TARGETS:
        candidates = [
            r
            for r in rows
            if r["scenario"] == target.scenario
            and r["variant"] == target.variant
            and (target.config == "*" or r["config"] == target.config)
        ]
        configs = sorted({r["config"] for r in candidates})
        for config in configs or ([target.config] if target.config != "*" else []):
            mine = [r for r in candidates if r["config"] == config]
            if not mine:
                out.append(
                    {
                        "target": target.text,
                        "config": config,
                        "field": target.field,
                        "limit": target.limit,
                        "at_least": target.at_least,
                        "measured": None,
                        "met": None,
                        "note": "not measured",
                    }
                )
                continue
            exact = [r for r in mine if r["size"] == target.size]
            row = exact[0] if exact else max(mine, key=lambda r: r["size"])
            value = target.value(row)
            note = ""
            if target.size is not None and not exact:
                note = f"measured at {row['size']:,}, the target is for {target.size:,}: not judged"
            met = None
            if value is not None and (exact or target.size is None):
                met = value >= target.limit if target.at_least else value <= target.limit
            out.append(
                {
                    "target": target.text,
                    "config": config,
                    "size": row["size"],
                    "field": target.field,
                    "limit": target.limit,
                    "at_least": target.at_least,
                    "measured": value,
                    "met": met,
                    "note": note,
                }
            )
    return out


def _fmt_target_value(field: str, value: float | None) -> str:
    if value is None:
        return "-"
    if field.endswith("_s"):
        return fmt_seconds(value)
    if field == "rate":
        return f"{value:,.0f}/s"
    return f"{value:,.0f}"


# --- tables ---------------------------------------------------------------------------------

COLUMNS = [
    "scenario",
    "variant",
    "config",
    "size",
    "median",
    "p95",
    "per unit",
    "rate",
    "baseline",
    "x base",
    "peak MB",
    "written",
]


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        base = r.get("baseline")
        base_text = "-"
        if base:
            per = r["baselines"][base]["per_unit_s"]
            base_text = f"{base} {fmt_seconds(per)}"
        ratio = r.get("ratio")
        out.append(
            [
                r["scenario"],
                r["variant"],
                r["config"],
                f"{r['size']:,}",
                fmt_seconds(r["median_s"]) + f"/{r['sample_unit']}",
                fmt_seconds(r["p95_s"]),
                f"{fmt_seconds(r['per_unit_s'])}/{r['per_unit']}",
                f"{r['rate']:,.0f} {r['rate_unit']}" if r.get("rate") is not None else "-",
                base_text,
                f"{ratio:,.1f}" if ratio is not None else "-",
                f"{r['peak_rss_mb']:,.0f}" if r.get("peak_rss_mb") is not None else "-",
                _bytes(r.get("bytes_written")),
            ]
        )
    return out


def _order(rows: list[Row], config_order: list[str]) -> list[Row]:
    scenarios = ["chain", "fanout", "tiny", "management", "resume", "payload"]
    rank = {c: i for i, c in enumerate(config_order)}
    return sorted(
        rows,
        key=lambda r: (
            scenarios.index(r["scenario"]) if r["scenario"] in scenarios else 99,
            r["variant"],
            rank.get(r["config"], 99),
            r["size"],
        ),
    )


def console_table(rows: list[Row], config_order: list[str]) -> str:
    body = table_rows(_order(rows, config_order))
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(COLUMNS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    previous = None
    for line in body:
        if previous is not None and line[0] != previous:
            lines.append("")
        previous = line[0]
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    return "\n".join(lines)


def markdown_table(rows: list[Row], config_order: list[str]) -> str:
    body = table_rows(_order(rows, config_order))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(lines)


def targets_text(targets: list[Row], markdown: bool = False) -> str:
    lines = []
    if markdown:
        lines += ["| target | config | limit | measured | met |", "|---|---|---|---|---|"]
    for t in targets:
        limit = ("≥ " if t.get("at_least") else "≤ ") + _fmt_target_value(
            t.get("field", ""), t.get("limit")
        )
        measured = _fmt_target_value(t.get("field", ""), t.get("measured"))
        met = {True: "met", False: "MISSED", None: "-"}[t["met"]]
        note = f" ({t['note']})" if t.get("note") else ""
        if markdown:
            lines.append(f"| {t['target']} | {t['config']} | {limit} | {measured}{note} | {met} |")
        else:
            lines.append(f"  {met:7s} {t['target']} [{t['config']}]: {measured} ({limit}){note}")
    return "\n".join(lines)


def growth_text(items: list[Row], markdown: bool = False) -> str:
    lines = []
    if markdown:
        lines += [
            "| scenario | variant | config | sizes | ratio | ≤ 1.5 |",
            "|---|---|---|---|---|---|",
        ]
    for g in sorted(items, key=lambda g: (g["scenario"], g["variant"], g["config"])):
        ratio = f"{g['ratio']:.2f}" if g["ratio"] is not None else "-"
        sizes = f"{g['smallest']:,} → {g['largest']:,}"
        met = "met" if g["met"] else "MISSED"
        if markdown:
            lines.append(
                f"| {g['scenario']} | {g['variant']} | {g['config']} | {sizes} | {ratio} "
                f"({g['measure']}) | {met} |"
            )
        else:
            lines.append(
                f"  {met:7s} {g['scenario']}/{g['variant']} [{g['config']}] {sizes}: "
                f"{ratio} ({g['measure']})"
            )
    return "\n".join(lines)
