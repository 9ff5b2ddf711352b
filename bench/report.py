"""BENCHMARKS.md and the chart, regenerated from a run's JSON."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

NOTES = Path(__file__).resolve().parent / "notes.md"

TARGETS = [
    (
        "hello: hearth >= 0.5x direct req/s",
        lambda d: d["ratios"].get("hello.hearth/direct"),
        0.5,
        ">=",
    ),
    (
        "pg: hearth-pooled >= 0.7x direct",
        lambda d: d["ratios"].get("pg.hearth-pooled/direct"),
        0.7,
        ">=",
    ),
    (
        "pg: hearth-pooled >= 10x connect-per-request",
        lambda d: d["ratios"].get("pg.hearth-pooled/hearth-connect-per-request"),
        10.0,
        ">=",
    ),
    (
        "sandbox on: hello >= 0.95x the same daemon with --sandbox off",
        lambda d: d["ratios"].get("hello.hearth/hearth-sandbox-off"),
        0.95,
        ">=",
    ),
    (
        "counting on: asgi-hello >= 0.97x the same daemon with --no-metrics (both --no-access-log)",
        lambda d: d["ratios"].get("asgi-hello.hearth-no-access-log/hearth-metrics-off"),
        0.97,
        ">=",
    ),
    (
        "beside a neighbour burning 4 processes: hello's p99 latency <= 2x alone (sandbox on)",
        lambda d: d["ratios"].get("p99 hello beside a burner/alone.hearth"),
        2.0,
        "<=",
    ),
    (
        "cold start p50, hello <= 20 ms",
        lambda d: d["cold_start_ms"].get("hello", {}).get("p50"),
        20.0,
        "<=",
    ),
    (
        "cold start p50, heavy <= 40 ms",
        lambda d: d["cold_start_ms"].get("heavy", {}).get("p50"),
        40.0,
        "<=",
    ),
    ("deploy (cached venv) <= 1000 ms", lambda d: d["deploy_ms"]["p50"], 1000.0, "<="),
    (
        "daemon idle CPU with the most warm instances measured < 5% of a core",
        lambda d: max((v["daemon_cpu_percent"] for v in d.get("many", {}).values()), default=None),
        5.0,
        "<=",
    ),
    (
        "burst: 500 clients at once on a function with zero instances, errors = 0",
        lambda d: d.get("burst", {}).get("errors"),
        0,
        "<=",
    ),
    (
        "step load: errors = 0",
        lambda d: sum(r["errors"] for r in d["steps"]["timeline"]) if "steps" in d else None,
        0,
        "<=",
    ),
    (
        "async: every accepted invocation completed, errors = 0",
        lambda d: d["async"]["errors"] + d["async"]["failed"] if "async" in d else None,
        0,
        "<=",
    ),
    (
        "private memory per warm hello instance <= 5 MB",
        lambda d: d["memory_mb"]["instance_private"],
        5.0,
        "<=",
    ),
]


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def targets(data: dict) -> list[tuple[str, float | None, str]]:
    rows = []
    for label, get, limit, op in TARGETS:
        value = get(data)
        if value is None:
            rows.append((label, None, "not measured"))
            continue
        met = value >= limit if op == ">=" else value <= limit
        rows.append((label, value, "met" if met else f"missed ({value:g} vs {limit:g})"))
    return rows


def burst_and_steps(data: dict) -> list[str]:
    lines = []
    if "burst" in data:
        b = data["burst"]
        lines += [
            "## A burst from zero",
            "",
            f"{b['clients']} clients at once, each on a new connection, on `hello` with "
            f"`min = 0` and no instance running (`max = 20`); the median of {b['tries']} "
            "tries, errors summed over all.",
            "",
            "| all served in s | p50 ms | p99 ms | errors |",
            "|---:|---:|---:|---:|",
            f"| {b['all_served_s']:.2f} | {b['p50_ms']:.0f} | {b['p99_ms']:.0f} | {b['errors']} |",
            "",
        ]
    if "steps" in data:
        steps = data["steps"]
        phases = " -> ".join(f"{c} clients for {s:g} s" for c, s in steps["phases"])
        lines += [
            "## Step load",
            "",
            f"`bench/apps/sleepy` (200 ms a request, `concurrency = 8`, `window = 20s`, "
            f"`idle = 10s`): {phases}.",
            "",
            "![step load](bench/results/steps.png)",
            "",
            "| clients | instances at the end | most instances | median p99 ms | errors |",
            "|---:|---:|---:|---:|---:|",
            *(
                f"| {clients} | {v['instances_at_end']} | {v['max_instances']} | "
                f"{v['median_p99_ms']:.0f} | {v['errors']} |"
                for clients, v in steps["phases_summary"].items()
            ),
            "",
            "The autoscaler's events during the run (seconds from its start):",
            "",
            *(f"- {e['t']:.1f} s: {e['message']}" for e in steps["events"]),
            "",
        ]
    return lines


def websocket_lines(data: dict) -> list[str]:
    if "websocket" not in data:
        return []
    w = data["websocket"]
    return [
        "## WebSocket echo",
        "",
        "`bench/apps/ws-echo` (raw ASGI echo), 16 connections each sending a 32-byte text "
        "message and awaiting its echo (`bench/ws.py`, a client process of its own); "
        "median of the rounds.",
        "",
        "| system | round trips/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {v['round_trips_per_s']:.0f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} |"
            for name, v in w.items()
        ),
        "",
    ]


def backup_lines(data: dict) -> list[str]:
    if "backup" not in data:
        return []
    b = data["backup"]
    return [
        "## Backups",
        "",
        f"`hearth backup FILE` on the daemon above, holding {b['functions']}; "
        f"{b['notes']} Django notes in SQLite, {b['kv_hits']} counter hits in KV.",
        "",
        f"- one backup: p50 {b['seconds_p50']:.2f} s, max {b['seconds_max']:.2f} s, "
        f"{b['size_bytes'] / 1e6:.1f} MB",
        f"- `asgi-hello` under wrk ({data['settings']['connections']} connections) while "
        f"backups run back to back ({b['backups_during_load']} taken during the run), beside "
        "the same load without:",
        "",
        "| | req/s | p99 ms | errors |",
        "|---|---:|---:|---:|",
        f"| without backups | {b['without']['rps']:.0f} | {b['without']['p99_ms']:.2f} | "
        f"{b['without']['errors']} |",
        f"| during backups | {b['during']['rps']:.0f} | {b['during']['p99_ms']:.2f} | "
        f"{b['during']['errors']} |",
        "",
    ]


def async_lines(data: dict) -> list[str]:
    if "async" not in data:
        return []
    a = data["async"]
    return [
        "## Asynchronous invocations",
        "",
        f"{a['clients']} clients on keep-alive connections POST to `hello` with "
        f"`X-Hearth-Async: 1` for {a['seconds']:g} s: each invocation stored (committed in "
        "SQLite) before its 202. The worker replays them through the gateway at most "
        "`share x max x concurrency` (128) at once; completed counts from the first accept "
        "until the last invocation finished.",
        "",
        "| accepted | accepted/s | 202 p50 ms | 202 p99 ms | errors | completed/s | failed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {a['accepted']} | {a['accepted_per_s']:.0f} | {a['accept_p50_ms']:.2f} | "
        f"{a['accept_p99_ms']:.2f} | {a['errors']} | {a['completed_per_s']:.0f} | "
        f"{a['failed']} |",
        "",
    ]


def summary(data: dict) -> str:
    lines = [f"{k}: {v}" for k, v in data["ratios"].items()]
    lines += [f"{label}: {verdict}" for label, _, verdict in targets(data)]
    return "\n".join(lines)


def chart(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, scenario in zip(axes[:2], ("hello", "pg"), strict=True):
        rows = [r for r in data["results"] if r["scenario"] == scenario]
        ax.barh([r["system"] for r in rows], [r["rps"] for r in rows], color="#d2691e")
        ax.set_title(f"{scenario}: requests/s (higher is better)")
        ax.invert_yaxis()
        for i, r in enumerate(rows):
            ax.text(r["rps"], i, f" {r['rps']:.0f}", va="center")
    cold = data["cold_start_ms"]
    names = list(cold)
    axes[2].barh(names, [cold[n]["p50"] for n in names], color="#8b4513")
    axes[2].set_title("cold start p50, ms (lower is better)")
    axes[2].invert_yaxis()
    for i, n in enumerate(names):
        axes[2].text(cold[n]["p50"], i, f" {cold[n]['p50']:.1f}", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def steps_chart(steps: dict, path: Path) -> None:
    """Clients and instances (top) and latency (bottom) against time, scale events marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = steps["timeline"]
    t = [r["t"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    top.step(t, [r["instances"] for r in rows], where="post", color="#d2691e", label="instances")
    clients = top.twinx()
    clients.step(t, [r["clients"] for r in rows], where="post", color="#888", linestyle="--")
    clients.set_ylabel("clients (dashed)")
    top.set_ylabel("instances")
    top.set_title("sleepy (200 ms a request, 8 at once an instance): 1 -> 64 -> 256 -> 0 clients")
    for event in steps["events"]:
        top.axvline(event["t"], color="#8b4513", alpha=0.25, linewidth=1)
    nan = float("nan")  # no request in that second: no latency, a gap
    bottom.plot(t, [r["p99_ms"] if r["requests"] else nan for r in rows], color="#8b4513")
    bottom.plot(t, [r["p50_ms"] if r["requests"] else nan for r in rows], color="#d2691e")
    bottom.legend(["p99", "p50"], loc="upper left")
    bottom.set_ylabel("latency, ms")
    bottom.set_xlabel("seconds (vertical lines: the autoscaler's scale events)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write(data: dict, out: Path, md_path: Path) -> None:
    chart(data, out / "chart.png")
    if "steps" in data:
        steps_chart(data["steps"], out / "steps.png")
    m = data["machine"]
    s = data["settings"]
    lines = [
        "# Hearth benchmarks",
        "",
        "Generated by `bench/run.py` from `bench/results/latest.json`; do not edit by hand "
        "(notes come from `bench/notes.md`).",
        "",
        f"- machine: {m['cpus']} cores ({m['cpu']}), {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}",
        f"- date: {m['date']}",
        f"- command: `{data['command']}` ({data['mode']} mode, {data['elapsed_s']} s)",
        f"- load: wrk, 1 thread, {s['connections']} connections ({s['process_connections']} for "
        f"process-per-request), {s['seconds']:g} s per run, "
        f"{s['rounds']} rounds alternating systems, {s['warmup']:g} s warm-up; "
        "medians across rounds; errors are non-2xx plus socket errors, summed",
        "",
        "![chart](bench/results/chart.png)",
        "",
        "## Throughput",
        "",
        "| scenario | system | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['scenario']} | {r['system']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['errors']} |"
        )
    lines += ["", "## Ratios", "", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in data["ratios"].items()]
    lines += [
        "",
        "## Cold start (request to a function with zero instances)",
        "",
        "| subject | p50 ms | p99 ms |",
        "|---|---:|---:|",
    ]
    for name, v in data["cold_start_ms"].items():
        lines.append(f"| {name} | {v['p50']:.1f} | {v['p99']:.1f} |")
    lines += [
        "",
        f'`fresh_interpreter` is `python -c "import starlette..., psycopg, psycopg_pool"` '
        f"({s['cold_start_tries']} tries each).",
        "",
        "## Deploy and memory",
        "",
        f"- deploy of a changed `hello` (environment cached) until the new version answers, "
        f"through the CLI: p50 {data['deploy_ms']['p50']:.0f} ms, max "
        f"{data['deploy_ms']['max']:.0f} ms",
        f"- private memory (Private_Clean + Private_Dirty from smaps_rollup): warm `hello` "
        f"instance {data['memory_mb']['instance_private']:.2f} MB, root zygote "
        f"{data['memory_mb']['zygote_private']:.2f} MB, a version's (sandboxed) zygote "
        f"{data['memory_mb'].get('version_zygote_private', 0):.2f} MB, "
        f"100 warm `hello` instances of 100 "
        f"functions {data['memory_mb']['hundred_instances_private']:.1f} MB in total "
        f"(measured on {data['memory_mb']['measured_instances']})",
        "",
        "## Beside a CPU-burning neighbour",
        "",
        "`hello` at 100 requests per second, one at a time, alone and while another function "
        "of the same daemon keeps 4 processes busy (2 cores).",
        "",
        "| system | alone p50 ms | alone p99 ms | beside p50 ms | beside p99 ms |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {system} | {v['alone']['p50']:.2f} | {v['alone']['p99']:.2f} | "
            f"{v['beside']['p50']:.2f} | {v['beside']['p99']:.2f} |"
            for system, v in data.get("neighbour_ms", {}).items()
        ),
        "",
        *burst_and_steps(data),
        *websocket_lines(data),
        *backup_lines(data),
        *async_lines(data),
        "## Many warm instances",
        "",
        "The `hello` functions above, scaled live (`hearth scale`) to more warm instances; "
        "the daemon measured while they idle (10 s).",
        "",
        "| warm instances | daemon CPU, % of a core | daemon open files | private MB per "
        "instance |",
        "|---:|---:|---:|---:|",
        *(
            f"| {v['instances']} | {v['daemon_cpu_percent']:.1f} | {v['daemon_open_files']} | "
            f"{v['instance_private_mb']:.2f} |"
            for v in data.get("many", {}).values()
        ),
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---:|---|",
    ]
    for label, value, verdict in targets(data):
        shown = "" if value is None else f"{value:g}"
        lines.append(f"| {label} | {shown} | {verdict} |")
    if NOTES.exists():
        lines += ["", NOTES.read_text().strip()]
    md_path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":  # regenerate BENCHMARKS.md from the last run, without running it
    import json

    results = Path(__file__).resolve().parent / "results"
    write(
        json.loads((results / "latest.json").read_text()),
        results,
        results.parents[1] / "BENCHMARKS.md",
    )
