"""Draws the PNG plots of a `jepsen bench` run from its results.json.

Usage: plot.py RESULTS_DIR   (writes throughput.png, latency.png, latency-over-time.png,
failover.png, memory.png there)
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, ax, path, grid_axis="both"):
    """Legend, grid and layout shared by every plot, then the PNG."""
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis=grid_axis)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def throughput(r, out):
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = r["saturation"]
    ax.plot([s["concurrency"] for s in steps], [s["ok_per_s"] for s in steps], "o-", label="bpg submissions")
    if r.get("etcd"):
        e = r["etcd"]["steps"]
        ax.plot([s["concurrency"] for s in e], [s["ok_per_s"] for s in e], "s--", label="etcd durable puts")
    if r.get("disk"):
        ax.axhline(r["disk"]["fdatasync_per_s"], color="grey", linestyle=":", label="disk fdatasync/s (one at a time)")
    ax.axhline(2000, color="red", linewidth=0.8, label="target 2,000/s")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients (closed loop)")
    ax.set_ylabel("acknowledged per second")
    ax.set_title("Throughput, 3 nodes on one 2-core machine")
    save(fig, ax, out / "throughput.png")


def latency(r, out):
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = ["p50", "p90", "p99", "p999"]
    width = 0.8 / max(1, len(r["open_loop"]))
    for i, s in enumerate(r["open_loop"]):
        xs = [j + i * width for j in range(len(labels))]
        share = s["offered_per_s"] / max(1.0, r["saturation_per_s"]) * 100
        ax.bar(xs, [s["latency_ms"][k] for k in labels], width, label=f"{share:.0f} % of saturation ({s['offered_per_s']:.0f}/s)")
    ax.axhline(50, color="red", linewidth=0.8, label="target p99 50 ms")
    ax.set_xticks([j + width / 2 for j in range(len(labels))], ["p50", "p90", "p99", "p99.9"])
    ax.set_ylabel("submit latency, ms (from scheduled send)")
    ax.set_title("Submit latency, open loop")
    save(fig, ax, out / "latency.png", grid_axis="y")


def latency_over_time(r, out):
    """p50 and p99 of each window of the 50 % and 90 % steps: stalls show as spikes."""
    steps = [s for s in r["open_loop"][:2] if s.get("timeline")]
    if not steps:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    for s, color in zip(steps, ["tab:blue", "tab:orange"]):
        share = s["offered_per_s"] / max(1.0, r["saturation_per_s"]) * 100
        at = [w["at_s"] for w in s["timeline"]]
        ax.plot(at, [w["p99_ms"] for w in s["timeline"]], color=color, linewidth=1, label=f"p99, {share:.0f} %")
        ax.plot(at, [w["p50_ms"] for w in s["timeline"]], color=color, linewidth=1, linestyle=":", label=f"p50, {share:.0f} %")
    ax.axhline(50, color="red", linewidth=0.8, label="target p99 50 ms")
    ax.set_yscale("log")
    ax.set_xlabel("seconds into the measured step (by scheduled send)")
    ax.set_ylabel("submit latency, ms")
    ax.set_title("Submit latency over time, open loop, 250 ms windows")
    save(fig, ax, out / "latency-over-time.png")


def failover(r, out):
    f = r.get("failover")
    if not f:
        return
    fig, ax = plt.subplots(figsize=(6, 3))
    xs = range(1, len(f["samples_s"]) + 1)
    ax.plot(xs, f["samples_s"], "o")
    ax.axhline(f["median_s"], color="black", linestyle="--", label=f"median {f['median_s']:.2f} s")
    ax.axhline(2.0, color="red", linewidth=0.8, label="target median 2 s")
    ax.set_xlabel("leader kill")
    ax.set_ylabel("seconds to first ack")
    ax.set_ylim(bottom=0)
    ax.set_title("Leader SIGKILL to the first acknowledged submission")
    save(fig, ax, out / "failover.png")


def memory(r, out):
    fp = r.get("footprint") or []
    if not fp:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    nodes = len(fp[0]["rss_mib"])
    for n in range(nodes):
        ax.plot([f["jobs"] for f in fp], [f["rss_mib"][n] for f in fp], "o-", label=f"node {n}")
    ax.axhline(100, color="red", linewidth=0.8, label="target 100 MiB")
    ax.set_xscale("log")
    ax.set_xlabel("jobs in the replicated state")
    ax.set_ylabel("resident memory, MiB")
    ax.set_ylim(bottom=0)
    ax.set_title("Resident memory per node")
    save(fig, ax, out / "memory.png")


def main():
    out = Path(sys.argv[1])
    r = json.loads((out / "results.json").read_text())
    for draw in (throughput, latency, latency_over_time, failover, memory):
        draw(r, out)


if __name__ == "__main__":
    main()
