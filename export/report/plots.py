"""The report's PNG plots (matplotlib, imported only when a plot is drawn): DET curves, confusion matrices,
accuracy vs size, and the comparison of several models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.report.summary import comparison_rows
from export.report.settings import FA_TARGETS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


Curve = tuple[str, list[dict[str, Any]], str, str | None]  # label, DET points, line style, colour (None: next)


def _det_axes(ax: Any, curves: list[Curve]) -> None:
    for label, points, style, color in curves:
        pts = sorted(points, key=lambda p: -p["threshold"])  # traced in threshold order: the honest curve
        ax.plot([p["fa_per_hour"] for p in pts], [100 * p["frr"] for p in pts], style, marker="o", ms=3, label=label,
                color=color)
    for t in FA_TARGETS:
        ax.axvline(t, color="grey", ls=":", lw=0.8)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("false alarms per hour (symlog)")
    ax.set_ylabel("false rejection rate (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def plot_det(model: dict[str, Any], path: Path) -> None:
    """DET curves of every variant of one model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves = []
    for key, v in model["variants"].items():
        note = f" ({v['stream']['seconds'] / 60:.0f} min)" if v["stream"]["shortened"] else ""
        curves.append((v["title"] + note, v["det"], "--" if "int" not in key else "-", None))
    _det_axes(ax, curves)
    ax.set_title(f"{model['name']}: DET curves on {model['stream']['seconds'] / 60:.0f} min of held-out audio")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(clips: dict[str, Any], title: str, path: Path) -> None:
    """The confusion matrix of a clip summary (`edge.postprocess.summarize`), rows normalised."""
    plt = _pyplot()
    conf = np.asarray(clips["confusion"], dtype=float)
    labels = clips["labels"]
    rows = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * len(labels), 0.8 + 0.5 * len(labels)))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if conf[i, j]:
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {100 * clips['accuracy']:.1f}% ({clips['clips']} clips)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_size_accuracy(model: dict[str, Any], path: Path) -> None:
    """File size and clip accuracy of every variant of one model."""
    plt = _pyplot()
    keys = list(model["variants"])
    v = model["variants"]
    x = np.arange(len(keys))
    kb = [(v[k]["size"]["file_bytes"] or 0) / 1024 for k in keys]
    acc = [100 * v[k]["clips"]["accuracy"] for k in keys]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, kb, 0.4, color="tab:blue", label="model file (KB)")
    ax.set_ylabel("model file (KB)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.bar(x + 0.2, acc, 0.4, color="tab:orange", label="clip accuracy (%)")
    ax2.set_ylabel("clip accuracy (%)", color="tab:orange")
    ax2.set_ylim(0, 100)
    for xi, a in zip(x, acc):
        ax2.text(xi + 0.2, a + 1, f"{a:.1f}", ha="center", fontsize=7)
    ax.set_xticks(x, [v[k]["title"] for k in keys], rotation=15, fontsize=8)
    ax.set_title(f"{model['name']}: accuracy vs size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_comparison(models: list[dict[str, Any]], path: Path) -> None:
    """Several models: their int8 and float DET curves, and their clip accuracy."""
    plt = _pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    curves = []
    for i, m in enumerate(models):
        v = m["variants"]
        color = f"C{i % 10}"  # one colour per model: int8 solid, float dashed
        if "tflite_int8" in v:
            curves.append((f"{m['name']} int8", v["tflite_int8"]["det"], "-", color))
        if m["reference"] in v:
            curves.append((f"{m['name']} float", v[m["reference"]]["det"], "--", color))
    _det_axes(ax, curves)
    ax.set_title("DET curves (int8 solid, float dashed)")
    rows = comparison_rows(models)
    x = np.arange(len(rows))
    bx.bar(x - 0.2, [100 * (r["float_accuracy"] or 0) for r in rows], 0.4, label="float")
    bx.bar(x + 0.2, [100 * (r["int8_accuracy"] or 0) for r in rows], 0.4, label="int8")
    names = [f"{r['name']}\n{r['cell']} h{r['hidden']}, {(r['int8_bytes'] or 0) / 1024:.0f} KB int8" for r in rows]
    bx.set_xticks(x, names, fontsize=8)
    bx.set_ylabel("clip accuracy (%)")
    bx.set_ylim(0, 100)
    bx.legend(fontsize=8)
    bx.set_title("clip accuracy per model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(model: dict[str, Any], out: Path, slug: str) -> None:
    """One model's plots into `out`, their file names into model["plots"]."""
    v = model["variants"]
    plots = {"det": f"{slug}_det.png", "size_accuracy": f"{slug}_size_accuracy.png"}
    plot_det(model, out / plots["det"])
    plot_size_accuracy(model, out / plots["size_accuracy"])
    if "tflite_int8" in v:
        plots["confusion_int8"] = f"{slug}_confusion_int8.png"
        plot_confusion(v["tflite_int8"]["clips"], f"{model['name']} TFLite int8", out / plots["confusion_int8"])
    ref = v[model["reference"]]
    plots["confusion_float"] = f"{slug}_confusion_float.png"
    plot_confusion(ref["clips"], f"{model['name']} {ref['title']}", out / plots["confusion_float"])
    model["plots"] = plots
