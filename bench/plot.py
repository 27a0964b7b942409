"""docs/benchmarks.png: throughput per endpoint against the floor, p50 against chat size."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt

from bench.dataset import CHAT_OF_SIZE
from bench.paging import CHATS_DEEP, CHATS_FIRST, HISTORY_DEEP, HISTORY_NEWEST
from bench.results import Results

SHORT_LABELS = {
    "floor": "floor",
    "get20": "GET\nlimit=20",
    "get100": "GET\nlimit=100",
    CHATS_FIRST: "chat list\nfirst page",
    HISTORY_NEWEST: "history\nnewest",
    "post_chat": "POST\n/chats/",
    "post_message": "POST\nmessages",
    "delete": "DELETE\n/chats/{id}",
}


def _short_label(results: Results, name: str) -> str:
    """The bar's label; the deep pages' say how deep they are."""
    paged = results.paging
    if name == CHATS_DEEP and paged:
        return f"chat list\n{paged.chat_list_depth:,} in"
    if name == HISTORY_DEEP and paged:
        return f"history\n{paged.history_back:,} back"
    return SHORT_LABELS.get(name, name)


def plot(results: Results, names: list[str], path: Path) -> None:
    """The endpoints `names`, in that order, beside the chat-size runs."""
    fig, (throughput, sizes) = plt.subplots(
        1, 2, figsize=(16, 5.6), gridspec_kw={"width_ratios": [3, 2]}
    )
    rps = [results.endpoints[name].result.rps for name in names]
    floor = results.endpoints["floor"].result.rps
    colors = ["#9e9e9e" if name == "floor" else "#1f77b4" for name in names]
    bars = throughput.bar([_short_label(results, name) for name in names], rps, color=colors)
    throughput.tick_params(axis="x", labelsize=8)
    for bar, value in zip(bars, rps, strict=True):
        throughput.annotate(
            f"{value:,.0f}\n{value / floor:.2f}x",
            (bar.get_x() + bar.get_width() / 2, value),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    for share, style, label in ((0.5, "--", "GET target"), (0.33, ":", "POST target")):
        throughput.axhline(
            floor * share,
            color="#d62728",
            linestyle=style,
            linewidth=1,
            label=f"{label}: {share}x floor",
        )
    throughput.legend(loc="upper right", fontsize=8)
    throughput.set_ylabel("requests/s (one uvicorn worker)")
    throughput.set_ylim(0, max(rps) * 1.2)
    throughput.set_title("Throughput per endpoint, against the floor")

    sizes.set_xscale("log")
    for kind, marker in (("get", "o"), ("post", "s")):
        runs = results.chat_size.get(kind, {})
        points = sorted((int(size), m.result.p50_ms) for size, m in runs.items())
        if points:
            xs, ys = zip(*points, strict=True)
            label = "GET limit=20" if kind == "get" else "POST message"
            sizes.plot(xs, ys, marker=marker, label=label)
            for x, y in points:
                sizes.annotate(
                    f"{y:.2f} ms", (x, y), textcoords="offset points", xytext=(0, 6), fontsize=8
                )
    sizes.set_xticks(list(CHAT_OF_SIZE), [f"{size:,}" for size in CHAT_OF_SIZE])
    sizes.set_ylim(bottom=0, top=sizes.get_ylim()[1] * 1.1)
    sizes.set_xlabel("messages in the chat (all requests on that one chat)")
    sizes.set_ylabel("p50 latency, ms")
    sizes.set_title("p50 latency against chat size")
    sizes.legend()
    sizes.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
