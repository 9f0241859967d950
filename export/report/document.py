"""The report as a document: blocks (`Doc`) rendered as Markdown and as self-contained HTML (plots embedded
as data URIs), and the sections built from the report's JSON."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.report.settings import FA_TARGETS, FRR_AT_FA_METHOD, SPLIT, ReportOptions


@dataclass
class Doc:
    """Blocks rendered both as Markdown and as self-contained HTML."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str, bold: bool = False) -> None:
        self.blocks.append(("b" if bold else "p", text))

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", (headers, rows)))

    def image(self, file: str, alt: str) -> None:
        self.blocks.append(("img", (file, alt)))

    def markdown(self) -> str:
        out = []
        for kind, b in self.blocks:
            if kind == "h":
                out.append("#" * b[0] + " " + b[1])
            elif kind in ("p", "b"):
                out.append(f"**{b}**" if kind == "b" else b)
            elif kind == "table":
                headers, rows = b
                out.append("\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                                     + ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]))
            else:
                out.append(f"![{b[1]}]({b[0]})")
        return "\n\n".join(out) + "\n"

    def html(self, folder: Path, title: str) -> str:
        body = []
        for kind, b in self.blocks:
            if kind == "h":
                body.append(f"<h{b[0]}>{html.escape(b[1])}</h{b[0]}>")
            elif kind in ("p", "b"):
                text = html.escape(b)
                body.append(f"<p><b>{text}</b></p>" if kind == "b" else f"<p>{text}</p>")
            elif kind == "table":
                headers, rows = b
                head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                cells = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            else:
                data = base64.b64encode((folder / b[0]).read_bytes()).decode("ascii")
                body.append(f'<p><img alt="{html.escape(b[1])}" src="data:image/png;base64,{data}"></p>')
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
                 "text-align:right}th{background:#f3f3f3}img{max-width:100%}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _cell(c: Any) -> str:
    return "–" if c is None else str(c)


def _pct(x: float | None, digits: int = 2) -> str | None:
    return None if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, fmt: str = "{:.1f}") -> str | None:
    return None if x is None else fmt.format(x)


def _budget_words(cal: dict[str, Any]) -> str:
    """How the false alarms were allowed: in all, shared among keywords (today), or an equal share each (manifests
    exported before the pooled budget)."""
    if "allowed_false_alarms" not in cal:
        return f"at most {cal['allowed_false_alarms_per_keyword']} false alarm(s) per keyword"
    given = {k: v["allowed_false_alarms"] for k, v in cal["keywords"].items() if v.get("allowed_false_alarms")}
    shared = ", ".join(f"{n} to {k}" for k, n in given.items()) or "none used"
    return f"at most {cal['allowed_false_alarms']} false alarm(s) in all ({shared})"


def calibration_section(doc: Doc, cal: dict[str, Any], op: dict[str, Any], stream: dict[str, Any]) -> None:
    """The operating point the export chose (manifest["operating_point"]) and what it gives on this test stream."""
    doc.h(3, "Operating point (chosen at export)")
    doc.p(f"Thresholds set for <= {cal['target_fa_per_hour']:g} FA/h in all on {cal['seconds'] / 60:.1f} min of "
          f"{cal['split']}-split stream through int8: {_budget_words(cal)} there (one = "
          f"{cal['fa_per_hour_resolution']:.2f} FA/h). There: recall {_pct(cal['total']['recall'])}, "
          f"{cal['total']['fa_per_hour']:.2f} FA/h. On this test stream ({stream['seconds'] / 60:.1f} min), TFLite int8 at "
          f"these thresholds: recall {_pct(op['recall'])}, {op['fa_per_hour']:.2f} FA/h ({op['false_alarms']} false alarms).")
    rows = [[k, f"{c['threshold']:.4f}", _pct(c["recall"]), _num(c["fa_per_hour"], "{:.2f}"),
             _pct(op["keywords"][k]["recall"] if op["keywords"][k]["keywords"] else None),
             _num(op["keywords"][k]["fa_per_hour"], "{:.2f}")] for k, c in cal["keywords"].items() if k in op["keywords"]]
    doc.table(["keyword", "threshold", f"recall ({cal['split']})", f"FA/h ({cal['split']})", "recall (test, int8)",
               "FA/h (test, int8)"], rows)


def model_section(doc: Doc, m: dict[str, Any], opts: ReportOptions) -> None:
    """One model's section: clip accuracy, false rejections vs false alarms, operating point, cost, plots."""
    v = m["variants"]
    s = m["stream"]
    doc.h(2, f"{m['name']} ({m['model']['cell']}, hidden {m['model']['hidden']}, {m['model']['layers']} layer(s))")
    doc.p(m["summary"], bold=True)
    doc.p(f"Artifacts {m['artifacts']}; training run {m['run'] or 'not available'}; data {m['data']} "
          f"({m['recipe']}, split {m['split']}); reference for agreement: {v[m['reference']]['title']}.")
    doc.h(3, "Clip accuracy (each clip streamed alone from a reset state)")
    doc.table(["variant", "runtime", "clips", "accuracy", "standard clips", "standard accuracy", "agreement (clips)",
               "agreement (frames, clips)", "agreement (frames, stream)"],
              [[e["title"], e["runtime"], e["clips"]["clips"], _pct(e["clips"]["accuracy"]), e["standard"]["clips"],
                _pct(e["standard"]["accuracy"]), _pct(e["agreement"]["clip"]), _pct(e["agreement"]["frame_clips"]),
                _pct(e["agreement"]["frame_stream"])]
               for e in v.values()])
    protocol = next(iter(v.values()))["standard"]["protocol"]
    doc.p("accuracy: the device's decision (`clip_decision`: smoothed peaks against the thresholds) on every clip "
          f"plus 10 % silence cuts; standard accuracy: {protocol} (`clip_argmax`, no thresholds), comparable "
          "with published results.")
    labels = m["labels"]
    doc.table(["label", *[e["title"] for e in v.values()], *[f"{e['title']} standard" for e in v.values()]],
              [[l, *[_pct(e["clips"]["per_class"][l], 1) for e in v.values()],
                *[_pct(e["standard"]["per_class"][l], 1) for e in v.values()]] for l in labels])
    doc.h(3, "False rejections vs false alarms (state never reset)")
    doc.p(f"Stream: {s['seconds'] / 60:.1f} min ({s['frames']} frames) of test-split keywords and unknown words "
          f"over test-split noise, {s['keywords']} keywords, seed {s['seed']}. One false alarm on this stream = "
          f"{s['fa_per_hour_resolution']:.2f} FA/h, so targets below that mean zero false alarms. "
          f"FRR at a target: {FRR_AT_FA_METHOD}. Substitutions: the false alarms that are a wrong keyword fired "
          "over a planted keyword (a confusion); the rest fire on unknown words, noise, or repeat a keyword.")
    rows = []
    for e in v.values():
        op = e["operating_point"]
        at = [e["frr_at_fa"][str(t)] for t in FA_TARGETS]
        rows.append([e["title"] + (f" (first {e['stream']['seconds'] / 60:.1f} min)" if e["stream"]["shortened"] else ""),
                     "per keyword" if m["postprocess"]["thresholds"] else f"{op['threshold']:g}",
                     _pct(op["recall"]), _num(op["fa_per_hour"]), f"{op['false_alarms']} ({op['substitutions']})",
                     *[None if a is None else f"{100 * a['frr']:.2f}% (t={a['threshold']:g})" for a in at]])
    doc.table(["variant", "manifest threshold", "recall", "FA/h", "false alarms (substitutions)",
               *[f"FRR @ {t:g} FA/h" for t in FA_TARGETS]], rows)
    overrides = m["postprocess"]["thresholds"]
    doc.p(f"Manifest post-processing: window {m['postprocess']['window']} frames, refractory "
          f"{m['postprocess']['refractory']} frames" + (f", per-label thresholds {overrides}" if overrides else "")
          + ". The sweep sets one threshold for every keyword (as `edge run --threshold`).")
    if m.get("calibration") and "tflite_int8" in v:
        calibration_section(doc, m["calibration"], v["tflite_int8"]["operating_point"], s)
    if any(e["stream"]["shortened"] for e in v.values()):
        doc.p("TFLite Micro ran on the first part of the stream only (--tflm-minutes), keywords ending inside it.")
    doc.image(m["plots"]["det"], "DET curves")
    doc.h(3, "Cost")
    fw = m.get("firmware") or {}
    rows = []
    for e in v.values():
        lat = e["latency_us"] or {}
        rows.append([e["title"], _num(None if e["size"]["file_bytes"] is None else e["size"]["file_bytes"] / 1024),
                     e["size"]["tflm_arena_bytes"], _num(lat.get("model", {}).get("p50")),
                     _num(lat.get("total", {}).get("p50")), _num(lat.get("total", {}).get("p99")),
                     _num(e["wall_seconds"]["stream"])])
    if fw:
        rows.append(["firmware (Cortex-M4)", _num(fw["flash_bytes"] / 1024) if "flash_bytes" in fw else None,
                     fw.get("ram_bytes"), None, None, None, None])
    doc.table(["variant", "file KB", "TFLM arena bytes / RAM", "model µs p50", "total µs p50", "total µs p99",
               "stream wall s"], rows)
    doc.p(f"Parameters {m['model']['params']}, MACs per frame {m['model']['macs_per_frame']}. Latency: "
          f"`edge.bench.bench` on {opts.bench_seconds:g} s of audio, one thread, on this machine.")
    if fw:
        doc.table(["firmware figure", "value"], [[k, val] for k, val in fw.items() if not isinstance(val, (dict, list))])
    doc.image(m["plots"]["size_accuracy"], "accuracy vs size")
    if "confusion_int8" in m["plots"]:
        doc.image(m["plots"]["confusion_int8"], "confusion matrix int8")
    doc.image(m["plots"]["confusion_float"], "confusion matrix float")


def build_doc(report: dict[str, Any], opts: ReportOptions) -> Doc:
    """The whole document of report.json: summaries, the comparison of several models, one section each."""
    doc = Doc()
    models = report["models"]
    doc.h(1, "Accuracy vs quantization")
    for m in models:
        doc.p(f"{m['name']}: {m['summary']}", bold=True)
    doc.p(f"Created {report['created_utc']}. Held-out {SPLIT} split; long stream {opts.minutes:g} min, seed "
          f"{opts.seed}; {len(opts.thresholds)} thresholds swept ({min(opts.thresholds):g}–{max(opts.thresholds):g}).")
    if len(models) > 1:
        doc.h(2, "Comparison")
        doc.table(["model", "cell", "hidden", "params", "MACs/frame", "float acc", "int8 acc", "int8 cost pp",
                   "float standard acc", "int8 standard acc",
                   "FRR@1FA/h float", "FRR@1FA/h int8", "int8 KB", "arena B", "int8 µs/frame"],
                  [[r["name"], r["cell"], r["hidden"], r["params"], r["macs_per_frame"], _pct(r["float_accuracy"]),
                    _pct(r["int8_accuracy"]), _num(r["int8_accuracy_cost_pp"], "{:.2f}"),
                    _pct(r["float_standard_accuracy"]), _pct(r["int8_standard_accuracy"]), _pct(r["float_frr_at_1"]),
                    _pct(r["int8_frr_at_1"]), _num(None if r["int8_bytes"] is None else r["int8_bytes"] / 1024),
                    r["tflm_arena_bytes"], _num(r["int8_model_us_p50"])] for r in report["comparison"]])
        doc.image(report["comparison_plot"], "comparison")
    for m in models:
        model_section(doc, m, opts)
        if m.get("falsealarms"):
            falsealarms_section(doc, m["falsealarms"])
        if m.get("wakeword"):
            wakeword_section(doc, m["wakeword"])
    return doc


def falsealarms_section(doc: Doc, r: dict[str, Any]) -> None:
    """False alarms per keyword on the negative audio, streamed as one stream (`export.falsealarms`)."""
    from export.falsealarms import text_lines

    doc.h(3, "False alarms on audio without keywords")
    doc.p(text_lines(r)[0].strip() + ".")
    points = r["points"]
    heads = ["keyword", "manifest threshold"] + [
        "FA/h at the manifest thresholds" if p["threshold"] is None else f"FA/h at {p['threshold']:g}" for p in points]
    hours = r["negatives"]["seconds"] / 3600
    rows = [[k, f"{t:.4f}"] + [f"{p['by_keyword'][k] / hours:.1f}" if hours else "–" for p in points]
            for k, t in r["manifest_thresholds"].items()]
    rows.append(["all", ""] + [f"{p['fa_per_hour']:.1f}" for p in points])
    doc.table(heads, rows)


def wakeword_section(doc: Doc, r: dict[str, Any]) -> None:
    """Recall on the real recordings of the keyword and FA/h on the negative audio (`export.wakeword`)."""
    from export.wakeword import text_lines

    doc.h(3, f"Real recordings: {r['keyword']!r}")
    lines = text_lines(r)
    doc.p("; ".join(line.strip() for line in lines[:3]) + ".")
    doc.table(["threshold", "recall", "FA/h"],
              [[f"{p['threshold']:.2f}", _pct(p["recall"], 1), f"{p['fa_per_hour']:.1f}"] for p in r["sweep"]])
