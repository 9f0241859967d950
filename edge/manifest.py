"""`manifest.json`: what travels with the model files, and the checks a runtime makes before trusting it.

Schema (version 1, every key documented in README "Artifacts"):
  schema_version, name, created_utc, labels, frontend (FrontendConfig fields), feature_scale,
  postprocess (PostprocessConfig fields), model {config, params, macs_per_frame},
  state {design, tensors: [{name, output, shape}]},
  variants {<variant>: {file, sha256, bytes, inputs, outputs, ops, feature_quantizer, tflm_arena_bytes}},
  baseline {window_frames, variants {...same form...}}, onnx {file, sha256}, training, fidelity, versions,
  operating_point (export/calibrate.py: how postprocess.thresholds were chosen; optional).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ManifestError
from edge.frontend import FEATURE_SCALE, FrontendConfig, FrontendConfigError
from edge.postprocess import PostprocessConfig

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED_KEYS = ("schema_version", "labels", "frontend", "feature_scale", "postprocess", "state", "variants")
VARIANT_KEYS = ("file", "sha256", "bytes", "inputs", "outputs")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class VariantSpec:
    name: str
    path: Path
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    feature_quantizer: dict[str, Any] | None
    raw: dict[str, Any]

    def input(self, name: str) -> dict[str, Any]:
        return next(d for d in self.inputs if d["name"] == name)

    def output(self, name: str) -> dict[str, Any]:
        return next(d for d in self.outputs if d["name"] == name)


@dataclass
class Manifest:
    root: Path
    data: dict[str, Any]
    labels: list[str]
    frontend: FrontendConfig
    postprocess: PostprocessConfig
    state_pairs: list[tuple[str, str]]

    @property
    def variants(self) -> list[str]:
        return list(self.data["variants"])

    def variant(self, name: str, section: str = "variants", verify_hash: bool = True) -> VariantSpec:
        table = self.data.get(section, {})
        if section == "baseline":
            table = table.get("variants", {})
        if name not in table:
            raise ManifestError(f"{self.root}: no {name!r} model in the manifest (has: {', '.join(table) or 'none'})")
        v = table[name]
        missing = [k for k in VARIANT_KEYS if k not in v]
        if missing:
            raise ManifestError(f"{self.root}/{MANIFEST}: variant {name!r} lacks {missing}")
        path = self.root / v["file"]
        if not path.is_file():
            raise ManifestError(f"{path}: model file listed in the manifest is missing")
        if verify_hash:
            digest = sha256_file(path)
            if digest != v["sha256"]:
                raise ManifestError(f"{path}: sha256 {digest[:12]}... does not match the manifest ({v['sha256'][:12]}...); refusing to load")
        return VariantSpec(name, path, v["inputs"], v["outputs"], v.get("feature_quantizer"), v)


def load_manifest(root: Path, expected_frontend: FrontendConfig | None = None) -> Manifest:
    """Read and validate `root/manifest.json` against this runtime's front end and schema."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise ManifestError(f"{root}: artifacts folder does not exist")
    if not path.is_file():
        raise ManifestError(f"{root}: no {MANIFEST} (not an artifacts folder from `make export`)")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ManifestError(f"{path}: missing keys {missing}")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ManifestError(f"{path}: schema version {data['schema_version']} is not supported (this runtime reads {SCHEMA_VERSION})")
    try:
        frontend = FrontendConfig.from_dict(data["frontend"])
    except (FrontendConfigError, TypeError) as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    expected = expected_frontend or FrontendConfig()
    if frontend != expected:
        diff = [k for k, v in expected.to_dict().items() if data["frontend"].get(k) != v]
        raise ManifestError(f"{path}: the model was trained with a different front end ({', '.join(diff)} differ from this runtime's)")
    if float(data["feature_scale"]) != FEATURE_SCALE:
        raise ManifestError(f"{path}: feature scale {data['feature_scale']} differs from this runtime's {FEATURE_SCALE}")
    labels = data["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or len(set(labels)) != len(labels):
        raise ManifestError(f"{path}: labels must be a list of at least two distinct names")
    try:
        post = PostprocessConfig.from_dict(data["postprocess"])
        post.check_labels(labels)
    except (KeyError, ValueError, TypeError) as exc:
        raise ManifestError(f"{path}: invalid postprocess section ({exc})") from exc
    pairs = [(t["name"], t["output"]) for t in data["state"].get("tensors", [])]
    for vname, v in data["variants"].items():
        probs = [o for o in v.get("outputs", []) if o.get("name") == "probs"]
        if not probs or probs[0]["shape"][-1] != len(labels):
            raise ManifestError(f"{path}: variant {vname!r} outputs {probs[0]['shape'][-1] if probs else 'no'} classes but the manifest has {len(labels)} labels")
        names = {d["name"] for d in v.get("inputs", [])} | {d["name"] for d in v.get("outputs", [])}
        for a, b in pairs:
            if a not in names or b not in names:
                raise ManifestError(f"{path}: variant {vname!r} lacks state tensors {a}/{b}")
    return Manifest(root, data, labels, frontend, post, pairs)
