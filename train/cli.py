"""`python -m train [train] | data-info | evaluate | synth | download`."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

from edge.errors import EXIT_USER_ERROR, UserError

SUBCOMMANDS = ("train", "data-info", "evaluate", "synth", "download")
DEFAULT_SYNTH_WORDS = "yes,no,up,down,left,right,on,off,stop,go"


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="speech_commands",
                   help="speech_commands | speech_commands_35 | sc_test_set | fsdd | folder | synthetic")
    p.add_argument("--data", nargs="+", default=None, metavar="DIR",
                   help="dataset folder(s), merged by label, each keeping its own split lists (or env KWS_DATA_DIR)")
    p.add_argument("--keywords", default="", help="comma-separated keywords (folder/synthetic/speech_commands)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train", description="Train recurrent keyword spotters.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model (the default command)")
    _data_args(t)
    t.add_argument("--model", default="gru", help="gru | lstm | rnn")
    t.add_argument("--size", default="mcu", help="mcu (fits the firmware budget) | pi (Raspberry Pi, ~150-250 k "
                   "parameters): sets --hidden/--layers/--proj, which override it")
    t.add_argument("--hidden", type=int, default=None, help="recurrent units per layer (default: from --size)")
    t.add_argument("--layers", type=int, default=None, help="recurrent layers, 1-3 (default: from --size)")
    t.add_argument("--proj", type=int, default=None, help="input projection width, 0 = none (default: from --size)")
    t.add_argument("--bidirectional", action="store_true", help="offline scoring only; cannot be exported")
    t.add_argument("--objective", default="frame", choices=("frame", "clip"),
                   help="frame: a target per frame of long streams (default); clip: one label per clip (many-to-one)")
    t.add_argument("--epochs", type=int, default=None, help="default: 80 for --size mcu, 40 for pi")
    t.add_argument("--patience", type=int, default=20, help="early stop after N epochs without validation gain")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 3e-3; 1e-3 for rnn)")
    t.add_argument("--snr-db", default="0,30", help="background noise SNR range in dB, LO,HI (default 0,30)")
    t.add_argument("--oversample", type=float, default=0.6,
                   help="repeat scarce keyword classes up to this share of the median keyword count (0 = off)")
    t.add_argument("--views", type=int, default=6, help="cached augmented stream realisations")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads (results are reproducible per value)")
    t.add_argument("--synth-per-word", type=int, default=120, help="synthetic recipe: clips per word")
    t.add_argument("--out", type=Path, default=Path("runs/default"), help="run folder")
    t.add_argument("--force", action="store_true", help="replace an existing run folder")
    t.add_argument("--quiet", action="store_true")
    d = sub.add_parser("data-info", help="class counts per split")
    _data_args(d)
    e = sub.add_parser("evaluate", help="streaming clip accuracy of a checkpoint (state reset per clip)")
    e.add_argument("--run", required=True, type=Path)
    _data_args(e)
    e.set_defaults(recipe="auto")
    e.add_argument("--split", default="test", choices=("train", "validation", "test"))
    e.add_argument("--json", action="store_true")
    sub.add_parser("synth", help="generate the synthetic espeak-ng dataset", add_help=False)
    sub.add_parser("download", help="download Speech Commands v2 or FSDD (needs a network)", add_help=False)
    return parser


def _keywords(s: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in s.split(",") if w.strip())


def synthetic_data_dir(words: tuple[str, ...], per_word: int, seed: int) -> Path:
    """Generate (once, cached under .cache/) the synthetic dataset for these words."""
    from train import synth

    key = f"{'-'.join(words)}_{per_word}_{seed}"
    out = Path(".cache") / "synth" / key
    if (out / "testing_list.txt").exists():
        return out
    if out.exists():
        shutil.rmtree(out)  # an interrupted generation of our own cache folder
    out.parent.mkdir(parents=True, exist_ok=True)
    synth.generate_dataset(out, keywords=list(words), negatives=None, n_per_word=per_word, seed=seed, workers=2)
    return out


def resolve_data(args: argparse.Namespace) -> tuple[str, list[Path], tuple[str, ...] | None]:
    from train.data import Recipe, data_dirs_from_env

    try:
        recipe = Recipe(args.recipe)
    except ValueError:
        raise UserError(f"unknown recipe {args.recipe!r}") from None
    kws = _keywords(args.keywords)
    if recipe is Recipe.SYNTHETIC and not args.data:
        words = kws or _keywords(DEFAULT_SYNTH_WORDS)
        return Recipe.FOLDER.value, [synthetic_data_dir(words, getattr(args, "synth_per_word", 120), 0)], words
    roots = data_dirs_from_env(args.data)
    if recipe is Recipe.SYNTHETIC:
        recipe = Recipe.FOLDER
        kws = kws or _keywords(DEFAULT_SYNTH_WORDS)
    return recipe.value, roots, kws or None


def cmd_train(args: argparse.Namespace) -> int:
    from train.models import Cell, ModelConfig, ModelSize
    from train.streams import Objective, StreamConfig
    from train.trainer import TrainConfig, train

    if args.threads < 1:
        raise UserError("--threads must be at least 1")
    try:
        cell = Cell(args.model)
    except ValueError:
        raise UserError(f"unknown model {args.model!r}; choose gru, lstm or rnn") from None
    try:
        size = ModelSize(args.size)
    except ValueError:
        raise UserError(f"unknown size {args.size!r}; choose mcu or pi") from None
    recipe, roots, kws = resolve_data(args)
    arch = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in size.preset.items()}
    try:
        mcfg = ModelConfig(cell=cell, bidirectional=args.bidirectional, size=size, **arch)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        lo, hi = (float(v) for v in args.snr_db.split(","))
    except ValueError:
        raise UserError(f"--snr-db must be two numbers LO,HI, got {args.snr_db!r}") from None
    if lo > hi:
        raise UserError("--snr-db: LO must not exceed HI")
    epochs = size.default_epochs if args.epochs is None else args.epochs
    if epochs < 1 or args.patience < 1:
        raise UserError("--epochs and --patience must be at least 1")
    if not 0.0 <= args.oversample <= 1.0:
        raise UserError("--oversample must be between 0 and 1")
    lr = cell.default_lr if args.lr is None else args.lr
    if lr <= 0:
        raise UserError("--lr must be positive")
    # Only once every argument checked out: a typo must not cost (or, with --force, delete) a run folder.
    if args.out.exists() and any(args.out.iterdir()):
        if not args.force:
            raise UserError(f"{args.out} already exists; pass --force to replace it")
        print(f"replacing existing run folder {args.out} (--force)", file=sys.stderr)
        shutil.rmtree(args.out)
    cfg = TrainConfig(recipe=recipe, data=tuple(str(r) for r in roots), keywords=kws or (), model=mcfg, epochs=epochs,
                      batch=args.batch, lr=lr, oversample=args.oversample, views=args.views, patience=args.patience, seed=args.seed, threads=args.threads,
                      stream=StreamConfig(objective=Objective(args.objective), snr_db=(lo, hi)))
    metrics = train(cfg, args.out, progress=not args.quiet)
    test = metrics.get("test", metrics.get("validation", {}))
    print(f"run saved to {args.out}: test clip accuracy {test.get('accuracy', float('nan')):.4f} "
          f"({metrics['size']['params']} params, {metrics['size']['macs_per_frame']} MACs/frame, "
          f"{metrics['train_seconds']:.0f} s)")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from train.data import load_dataset

    recipe, roots, kws = resolve_data(args)
    parts = [load_dataset(recipe, r, kws) for r in roots]
    merged = load_dataset(recipe, roots, kws)
    if len(roots) > 1:
        for r, ds in zip(roots, parts):
            _print_counts(f"{r} ({recipe})", ds, merged.labels)
        _print_counts(f"merged, {len(roots)} folders ({recipe})", merged, merged.labels)
    else:
        _print_counts(f"{roots[0]} ({recipe})", merged, merged.labels)
    print("(_silence_ clips are cut from background noise at training and evaluation time)")
    return 0


def _print_counts(title: str, ds, labels: list[str]) -> None:
    counts = ds.counts()
    print(f"{title}: {len(ds.labels)} labels, {len(ds.noise_files)} background-noise files")
    print(f"{'label':<14}" + "".join(f"{s:>12}" for s in counts))
    for label in labels:
        print(f"{label:<14}" + "".join(f"{counts[s].get(label, 0):>12}" for s in counts))
    print(f"{'total':<14}" + "".join(f"{sum(counts[s].values()):>12}" for s in counts))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from edge.datasets import evaluation_clips, standard_clips
    from edge.postprocess import standard_summary
    from train.data import AudioCache, Recipe, auto_recipe, load_dataset, recorded_data_dirs
    from train.trainer import clip_features, clip_posteriors, load_run, score_clips

    run = load_run(args.run)
    if args.recipe == "auto":
        root = [Path(d) for d in args.data] if args.data else recorded_data_dirs(run.meta["train_config"]["data"])
        if not root:
            raise UserError(f"{args.run}: the run names no data folder; pass --data DIR")
        recipe = auto_recipe(root)
    else:
        recipe_s, root, _ = resolve_data(args)
        recipe = Recipe(recipe_s)
    kws = tuple(l for l in run.labels if not l.startswith("_")) if recipe in (Recipe.SPEECH_COMMANDS, Recipe.FOLDER) else None
    ds = load_dataset(recipe, root, kws)
    split = "test" if recipe is Recipe.SC_TEST_SET else args.split
    pcm, truth, _ = evaluation_clips(ds, split, AudioCache(run.frontend.sample_rate), labels=run.labels)
    result = score_clips(clip_posteriors(run.model, clip_features(pcm, run.frontend)), truth, run.labels, run.postprocess)
    spcm, struth, _ = standard_clips(ds, split, AudioCache(run.frontend.sample_rate), labels=run.labels)
    result["standard"] = standard_summary(clip_posteriors(run.model, clip_features(spcm, run.frontend)), struth,
                                          run.labels, run.postprocess.window)
    result.update({"split": split, "recipe": recipe.value})
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['clips']} clips ({split}): accuracy {result['accuracy']:.4f} (device clip decision); "
              f"standard {result['standard']['accuracy']:.4f} on {result['standard']['clips']} clips "
              f"({result['standard']['protocol']})")
        for label, acc in result["per_class"].items():
            print(f"  {label:<12} {'n/a' if acc is None else f'{acc:.3f}'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv.insert(0, "train")
    try:
        if argv[0] == "synth":
            from train import synth
            return synth.main(argv[1:])
        if argv[0] == "download":
            from train import download
            return download.main(argv[1:])
        args = build_parser().parse_args(argv)
        return {"train": cmd_train, "data-info": cmd_data_info, "evaluate": cmd_evaluate}[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
