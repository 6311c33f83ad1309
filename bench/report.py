"""The printed table and the PNG plot of a results dict (as written to the JSON file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import capacity

Results = dict[str, Any]


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]


def _ingress(res: Results) -> list[str]:
    rows, bare = [], {}
    for r in res["ingress"]:
        if r["target"] == "bare":
            bare[r["conns"]] = r["rate"]
        lat = r["latency"]
        rows.append([
            r["conns"], r["target"], f"{r['rate']:.0f}", lat["p50_ms"], lat["p99_ms"],
            r["errors"], r["server_cpu_util"], r.get("server_cpu_us_per_req", "-"),
            r["loadgen_cpu_util"],
            _ratio(r["rate"], bare.get(r["conns"], 0)) if r["target"] != "bare" else "1.00x",
        ])  # fmt: skip
    head = ["conns", "target", "req/s", "p50 ms", "p99 ms", "errors", "srv CPU", "CPU us/req"]
    head += ["gen CPU", "vs bare"]
    return [
        "1. Ingress intake, closed loop (ingress = 200 after JetStream PubAck)",
        *_table(head, rows),
    ]


def _e2e(res: Results) -> list[str]:
    base = {r["offered_rate"]: r for r in res["e2e"] if r["target"] == "in-process"}
    rows = []
    for r in res["e2e"]:
        e, b = r["e2e"], base.get(r["offered_rate"])
        ratio = _ratio(e["p99_ms"], b["e2e"]["p99_ms"]) if b and r is not b else "1.00x"
        rows.append([
            r["offered_rate"], r["target"], r["accepted"], r["delivered"], r["lost"],
            r["duplicates"], e["p50_ms"], e["p99_ms"], e["max_ms"], r["response"]["p99_ms"],
            int(r.get("deferred", 0)), r.get("cpu_us_per_event", "-"), ratio,
        ])  # fmt: skip
    head = ["ev/s", "target", "accepted", "delivered", "lost", "dups", "p50 ms", "p99 ms"]
    head += ["max ms", "resp p99", "naks", "CPU us/ev", "p99 vs in-proc"]
    title = "2. End to end: POST -> arrival at the HTTPS sink (latency from scheduled send)"
    return [title, *_table(head, rows)]


def _forwarders(res: Results) -> list[str]:
    raw = res["raw_baseline"]
    first = ["raw aiohttp", f"{raw['rate']:.0f}", raw["ok"], f"{raw['cpu_util']}"]
    rows: list[list[Any]] = [
        [*first, raw.get("cpu_us_per_delivery", "-"), "-", "-", "-", "-", "1.00x"]
    ]
    for r in res["forwarders"]:
        cpu = "+".join(str(c) for c in r["forwarder_cpu_util"])
        rows.append([
            f"{r['forwarders']} forwarder(s)", f"{r['rate']:.0f}", r["delivered"], cpu,
            r.get("cpu_us_per_delivery", "-"), r["sink_cpu_util"], r.get("nats_cpu_util", "-"),
            r.get("machine_busy_cores", "-"), int(r.get("deferred", 0)),
            _ratio(r["rate"], raw["rate"]),
        ])  # fmt: skip
    head = ["sender", "deliveries/s", "delivered", "sender CPU", "CPU us/dlv", "sink CPU"]
    head += ["nats CPU", "machine cores busy", "naks", "vs raw aiohttp"]
    title = f"3. Forwarder scaling: draining {res['plan']['backlog']} queued deliveries"
    title += f" (raw aiohttp: one process, {raw['concurrency']} in flight)"
    return [title, *_table(head, rows)]


def _ordering(res: Results) -> list[str]:
    part, rows = res["ordering"], []
    ratios = part.get("ratios", {})
    for r in part["e2e"]:
        e = r["e2e"]
        ratio = (
            ratios.get("p99", {}).get(str(r["offered_rate"]), "-")
            if r["ordering"] == "call"
            else "1.00"
        )
        rows.append([
            f"{r['offered_rate']} ev/s", r["ordering"], r["delivered"], r["lost"], e["p50_ms"],
            e["p99_ms"], r["cpu_us_per_event"], r["nats_msgs_per_event"],
            r["calls_out_of_order"], f"{ratio}x p99",
        ])  # fmt: skip
    for r in part["drain"]:
        ratio = (
            ratios.get("deliveries_per_s", {}).get(str(r["forwarders"]), "-")
            if r["ordering"] == "call"
            else "1.00"
        )
        rows.append([
            f"drain, {r['forwarders']} fwd", r["ordering"], r["delivered"], "-",
            f"{r['rate']:.0f}/s", "-", r["cpu_us_per_event"], r["nats_msgs_per_event"],
            r["calls_out_of_order"], f"{ratio}x dlv/s",
        ])  # fmt: skip
    head = ["run", "ordering", "delivered", "lost", "p50 ms | dlv/s", "p99 ms", "CPU us/ev"]
    head += ["NATS msgs/ev", "calls out of order", "call vs none"]
    title = f"6. Ordered delivery per call: {part['calls']} concurrent calls x 5 events,"
    title += " ordering: call vs none (targets: p99 <= 1.2x, deliveries/s >= 0.9x)"
    return [title, *_table(head, rows)]


def _memory(res: Results) -> list[str]:
    peak: dict[str, float] = {}
    for m in res["memory"]:
        peak[m["process"]] = max(peak.get(m["process"], 0.0), m["peak_rss_mb"])
    for r in res.get("forwarders", []):
        peak["forwarder"] = max([peak.get("forwarder", 0.0), *r["peak_rss_mb"]])
    rows = [[name, f"{mb:.1f}"] for name, mb in sorted(peak.items())]
    return ["4. Peak RSS per process under load (VmHWM)", *_table(["process", "MB"], rows)]


def _loadgen(res: Results) -> list[str]:
    utils = [r["loadgen_cpu_util"] for r in res.get("ingress", []) + res.get("e2e", [])]
    bare = max((r["rate"] for r in res.get("ingress", []) if r["target"] == "bare"), default=0)
    ours = max((r["rate"] for r in res.get("ingress", []) if r["target"] == "ingress"), default=0)
    return [
        "5. Load generator headroom",
        f"   its CPU use: at most {max(utils, default=0):.2f} of one core in any run;",
        f"   the same generator drove the bare handler at {bare:.0f} req/s,"
        f" {_ratio(bare, ours)} the ingress's best ({ours:.0f} req/s).",
    ]


def _profile(name: str, prof: dict[str, Any], top: int = 8) -> list[str]:
    rows = [[f"{pct}%", func] for func, pct in prof["self"][:top]]
    title = f"profile {name}: top self time ({prof['samples']} py-spy samples)"
    libs = ", ".join(f"{pkg} {pct}%" for pkg, pct in prof.get("packages", [])[:top])
    return [title, *_table(["self", "function"], rows), f"by library: {libs}"]


def text(res: Results) -> str:
    m = res["machine"]
    lines = [
        f"sayna-sip benchmark ({res['plan']['name']}) {res['date']}",
        f"machine: {m['cores']} cores ({m['cpu']}), Python {m['python']},"
        f" load average at start {m['loadavg_start']}",
        f"NOTE: load generator, nats-server, services and sink all share these {m['cores']} cores.",
        "",
    ]
    if res.get("uvloop_services"):
        lines[-1:-1] = [f"EXPERIMENT: on uvloop: {', '.join(res['uvloop_services'])}"]
    if res.get("extra_env"):
        env = " ".join(f"{k}={v}" for k, v in res["extra_env"].items())
        lines[-1:-1] = [f"EXPERIMENT: service environment {env}"]
    for part, render in (
        ("ingress", _ingress),
        ("e2e", _e2e),
        ("forwarders", _forwarders),
        ("ordering", _ordering),
        ("memory", _memory),
        ("ingress", _loadgen),
    ):
        if res.get(part):
            lines += [*render(res), ""]
    if res.get("e2e"):
        lines += [*capacity.text(res), ""]
    for name, prof in res.get("profiles", {}).items():
        lines += [*_profile(name, prof), ""]
    for name, why in res.get("skipped", {}).items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def plot(res: Results, path: Path) -> str:
    """Write the PNG; returns a one-line note (what was written, or why not)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (.venv/bin/pip install matplotlib)"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    if res.get("ingress"):
        _plot_ingress(axes[0], res["ingress"])
    if res.get("e2e"):
        _plot_e2e(axes[1], res["e2e"])
    if res.get("forwarders"):
        _plot_forwarders(axes[2], res["forwarders"], res["raw_baseline"])
    fig.suptitle(f"sayna-sip benchmark {res['date']} ({res['machine']['cores']} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"plot: {path}"


def _plot_ingress(ax: Any, rows: list[dict[str, Any]]) -> None:
    conns = sorted({r["conns"] for r in rows})
    for offset, target in ((-0.2, "bare"), (0.2, "ingress")):
        rates = [
            next(r["rate"] for r in rows if r["conns"] == c and r["target"] == target)
            for c in conns
        ]
        ax.bar([i + offset for i in range(len(conns))], rates, width=0.4, label=target)
    ax.set_xticks(range(len(conns)), [f"{c} conns" for c in conns])
    ax.set_ylabel("webhooks/s")
    ax.set_title("1. intake, closed loop")
    ax.legend()


def _plot_e2e(ax: Any, rows: list[dict[str, Any]]) -> None:
    for target in ("sayna-sip", "in-process"):
        mine = [r for r in rows if r["target"] == target]
        rates = [r["offered_rate"] for r in mine]
        ax.plot(rates, [r["e2e"]["p50_ms"] for r in mine], "o-", label=f"{target} p50")
        ax.plot(rates, [r["e2e"]["p99_ms"] for r in mine], "s--", label=f"{target} p99")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("POST -> hook arrival, ms")
    ax.set_yscale("log")
    ax.set_title("2. end-to-end latency")
    ax.legend(fontsize=8)


def _plot_forwarders(ax: Any, rows: list[dict[str, Any]], raw: dict[str, Any]) -> None:
    ax.bar([str(r["forwarders"]) for r in rows], [r["rate"] for r in rows], label="forwarders")
    ax.axhline(raw["rate"], color="red", linestyle="--", label="raw aiohttp, 1 process")
    ax.set_xlabel("forwarder processes")
    ax.set_ylabel("deliveries/s")
    ax.set_title("3. forwarder scaling")
    ax.legend()
