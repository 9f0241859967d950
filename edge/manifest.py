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
from typing import Any, Sequence

import numpy as np

from edge.errors import ManifestError
from edge.frontend import FEATURE_SCALE, FrontendConfig, FrontendConfigError
from edge.interpreters import TensorInfo
from edge.postprocess import PostprocessConfig

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED_KEYS = ("schema_version", "labels", "frontend", "feature_scale", "postprocess", "state", "variants")
VARIANT_KEYS = ("file", "sha256", "bytes", "inputs", "outputs")
IO_KEYS = ("name", "position", "shape", "dtype", "scale", "zero_point")


def artifact_file(root: Path, name: Any) -> Path:
    """`root / name` for a file name read from the manifest, refused unless it stays inside the artifacts folder:
    a relative path without `..` whose real location (symlinks followed) is inside the folder's real location."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ManifestError(f"{root / MANIFEST}: file {name!r} is not a relative path inside the artifacts folder")
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise ManifestError(f"{path}: leads outside the artifacts folder (a symbolic link?); refusing to load")
    return path


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
        path = artifact_file(self.root, v["file"])
        if not path.is_file():
            raise ManifestError(f"{path}: model file listed in the manifest is missing")
        if verify_hash:
            digest = sha256_file(path)
            if digest != v["sha256"]:
                raise ManifestError(f"{path}: sha256 {digest[:12]}... does not match the manifest ({v['sha256'][:12]}...); refusing to load")
        return VariantSpec(name, path, v["inputs"], v["outputs"], v.get("feature_quantizer"), v)


def _check_variant_entry(path: Path, vname: str, v: dict[str, Any], labels: list[str],
                         state: list[dict[str, Any]]) -> None:
    """One variant's entry agrees with the rest of the manifest: classes vs labels, the state tensors."""
    probs = [o for o in v.get("outputs", []) if o.get("name") == "probs"]
    if not probs or probs[0]["shape"][-1] != len(labels):
        raise ManifestError(f"{path}: variant {vname!r} outputs {probs[0]['shape'][-1] if probs else 'no'} classes "
                            f"but the manifest has {len(labels)} labels")
    inputs = {d["name"]: d for d in v.get("inputs", [])}
    outputs = {d["name"]: d for d in v.get("outputs", [])}
    for t in state:
        if t["name"] not in inputs or t["output"] not in outputs:
            raise ManifestError(f"{path}: variant {vname!r} lacks state tensors {t['name']}/{t['output']}")
        if list(inputs[t["name"]]["shape"]) != list(t["shape"]):
            raise ManifestError(f"{path}: state {t['name']!r} has shape {t['shape']} in state.tensors but "
                                f"{inputs[t['name']]['shape']} in variant {vname!r}")


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
    if data["feature_scale"] != FEATURE_SCALE:
        raise ManifestError(f"{path}: feature scale {data['feature_scale']} differs from this runtime's {FEATURE_SCALE}")
    labels = data["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or len(set(labels)) != len(labels):
        raise ManifestError(f"{path}: labels must be a list of at least two distinct names")
    try:
        post = PostprocessConfig.from_dict(data["postprocess"])
        post.check_labels(labels)
    except (KeyError, ValueError, TypeError) as exc:
        raise ManifestError(f"{path}: invalid postprocess section ({exc})") from exc
    try:
        state = data["state"].get("tensors", [])
        pairs = [(str(t["name"]), str(t["output"])) for t in state]
        for vname, v in data["variants"].items():
            _check_variant_entry(path, vname, v, labels, state)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ManifestError(f"{path}: malformed state or variants section ({type(exc).__name__}: {exc})") from exc
    return Manifest(root, data, labels, frontend, post, pairs)


# ----------------------------------------------------------------------------- the manifest vs the model
def _recorded(entry: dict[str, Any]) -> TensorInfo:
    """A manifest input/output entry in the interpreter's terms (`name` is the model's tensor name, if recorded)."""
    return TensorInfo(str(entry.get("tensor", "")), tuple(entry["shape"]), str(entry["dtype"]),
                      None if entry["scale"] is None else float(entry["scale"]),
                      None if entry["zero_point"] is None else int(entry["zero_point"]))


def _quantization(t: TensorInfo) -> tuple[np.float32 | None, int | None]:
    """Scale and zero point as the model stores them (float32 scales); (None, None) when not quantized."""
    return (None, None) if not t.scale else (np.float32(t.scale), t.zero_point)


def tensor_differences(recorded: TensorInfo, actual: TensorInfo) -> list[str]:
    """'shape [1, 41] vs [1, 40]'-style descriptions of where a manifest entry and the model's tensor differ."""
    out = []
    if recorded.name and recorded.name != actual.name:
        out.append(f"tensor {recorded.name!r} vs {actual.name!r}")
    if recorded.shape != actual.shape:
        out.append(f"shape {list(recorded.shape)} vs {list(actual.shape)}")
    if recorded.dtype != actual.dtype:
        out.append(f"dtype {recorded.dtype} vs {actual.dtype}")
    if _quantization(recorded) != _quantization(actual):
        out.append(f"scale/zero point {recorded.scale}/{recorded.zero_point} vs {actual.scale}/{actual.zero_point}")
    return out


def _check_tensors(where: str, kind: str, entries: Any, model: Sequence[TensorInfo]) -> dict[str, dict[str, Any]]:
    """The manifest's inputs or outputs, by name, after checking them one by one against the model's."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) and set(IO_KEYS) <= set(e) for e in entries):
        raise ManifestError(f"{where}: every manifest {kind} must be an object with {', '.join(IO_KEYS)}")
    positions = [e["position"] for e in entries]
    if not all(type(p) is int for p in positions) or sorted(positions) != list(range(len(model))):
        raise ManifestError(f"{where}: the manifest lists {kind}s at positions {positions}; the model has "
                            f"{len(model)} {kind}(s), at positions {list(range(len(model)))}")
    for e in entries:
        try:
            recorded = _recorded(e)
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: manifest {kind} {e['name']!r} is malformed ({exc})") from exc
        diff = tensor_differences(recorded, model[e["position"]])
        if diff:
            raise ManifestError(f"{where}: {kind} {e['name']!r} at position {e['position']} differs between the "
                                f"manifest and the model: {'; '.join(diff)} (manifest vs model)")
    by_name = {str(e["name"]): e for e in entries}
    if len(by_name) != len(entries):
        raise ManifestError(f"{where}: the manifest names two {kind}s alike: {[e['name'] for e in entries]}")
    return by_name


def _check_roles(where: str, kind: str, names: Sequence[str], expected: Sequence[str]) -> None:
    """Every model input is fed and every output read: the manifest's names are exactly `expected`."""
    unused = [n for n in names if n not in expected]
    if unused:
        raise ManifestError(f"{where}: model {kind} {unused[0]!r} is neither {expected[0]!r} nor in the manifest's "
                            f"state.tensors; the runtime would {'never feed' if kind == 'input' else 'ignore'} it")
    missing = [n for n in expected if n not in names]
    if missing:
        raise ManifestError(f"{where}: the manifest names {kind} {missing[0]!r}, which the model does not have")


def check_model_io(spec: VariantSpec, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                   labels: Sequence[str], state_pairs: Sequence[tuple[str, str]]) -> None:
    """Refuse (ManifestError) a manifest that disagrees with the loaded model it describes: the inputs and outputs
    (order, tensor names, shapes, dtypes, quantization), the labels vs the classes the model outputs, the state
    tensors (every model input besides the features is a state input carried from its output, with the same
    shape, dtype and quantization) and the feature quantizer vs the model's features input."""
    where = str(spec.path)
    ins = _check_tensors(where, "input", spec.inputs, inputs)
    outs = _check_tensors(where, "output", spec.outputs, outputs)
    _check_roles(where, "input", list(ins), ["features", *(a for a, _ in state_pairs)])
    _check_roles(where, "output", list(outs), ["probs", *(b for _, b in state_pairs)])
    classes = outs["probs"]["shape"][-1] if outs["probs"]["shape"] else 1
    if classes != len(labels):
        raise ManifestError(f"{where}: the model outputs {classes} classes but the manifest has {len(labels)} labels")
    for a, b in state_pairs:
        diff = tensor_differences(_recorded({**ins[a], "tensor": ""}), _recorded({**outs[b], "tensor": ""}))
        if diff:
            raise ManifestError(f"{where}: state {a!r} cannot carry {b!r}: {'; '.join(diff)} (input vs output)")
    features = _recorded(ins["features"])
    if features.dtype == "float32":
        return
    fq = spec.feature_quantizer
    if not isinstance(fq, dict) or not {"scale", "zero_point", "dtype"} <= set(fq):
        raise ManifestError(f"{where}: quantized model without a valid feature_quantizer in the manifest")
    try:
        quantizer = TensorInfo("", features.shape, str(fq["dtype"]), float(fq["scale"]), int(fq["zero_point"]))
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: the manifest's feature_quantizer is malformed ({exc})") from exc
    diff = tensor_differences(quantizer, features)
    if diff:
        raise ManifestError(f"{where}: the manifest's feature_quantizer differs from the model's features input: "
                            f"{'; '.join(diff)} (feature_quantizer vs model)")
