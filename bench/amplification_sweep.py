"""The amplification bench over several seeds: which trees the bundled model grows, and what
batching buys for each shape.

Run: .venv/bin/python bench/amplification_sweep.py [--seeds 1-6] [--rounds 2] [--tokens 24]
     [--question …]   (about a minute a seed alone)

`bench/amplification.py --sampled --seed S` grows one tree per seed as the bundled config
decodes (temperature 0.7, top-p 0.95) and times it against a naive sequential expansion of
the same tree in the same process. One seed gives one tree shape; the ratio's floor is set
by the shape (a step cannot cost less than one call, so steps / calls bounds it from below).
This runs that bench once per seed, each in its own process, and prints a row per seed
(shape, calls, steps, steps/calls, the ratio) and the pooled ratio (the sum of expansion
times over the sum of naive times) with a 95 % percentile bootstrap interval over seeds.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TREE = re.compile(r"tree: ([\d +]+) nodes, (\d+) model calls in (\d+) batched steps (\[[\d, ]*\])")
WALL = re.compile(r"wall time \(s\)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")


@dataclass(frozen=True)
class Grown:
    seed: int
    shape: str
    calls: int
    steps: int
    per_step: str
    expansion_s: float
    naive_s: float

    @property
    def ratio(self) -> float:
        return self.expansion_s / self.naive_s


def seeds_from(text: str) -> list[int]:
    """'1-6' or '1,4,9'."""
    if "-" in text:
        first, last = (int(part) for part in text.split("-", 1))
        return list(range(first, last + 1))
    return [int(part) for part in text.split(",")]


def grow(seed: int, args: argparse.Namespace) -> Grown:
    command = [sys.executable, str(ROOT / "bench" / "amplification.py"), "--sampled",
               "--seed", str(seed), "--rounds", str(args.rounds),
               "--tokens", str(args.tokens)]  # fmt: skip
    if args.question:
        command += ["--question", args.question]
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    tree, wall = TREE.search(out), WALL.search(out)
    if tree is None or wall is None:
        raise SystemExit(f"seed {seed}: the bench printed no tree or wall time:\n{out}")
    return Grown(seed=seed, shape=tree[1], calls=int(tree[2]), steps=int(tree[3]),
                 per_step=tree[4], expansion_s=float(wall[1]), naive_s=float(wall[2]))  # fmt: skip


def pooled_interval(grown: list[Grown], *, resamples: int = 2000) -> tuple[float, float] | None:
    """95 % percentile bootstrap of Σ expansion / Σ naive, resampling seeds."""
    if len(grown) < 2:
        return None
    expansion = np.array([g.expansion_s for g in grown])
    naive = np.array([g.naive_s for g in grown])
    picks = np.random.default_rng(0).integers(0, len(grown), size=(resamples, len(grown)))
    ratios = expansion[picks].sum(axis=1) / naive[picks].sum(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-6", help="a range '1-6' or a list '1,4,9'")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds a seed")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--question", default="", help="default: the bench's own question")
    args = parser.parse_args()

    grown: list[Grown] = []
    print(f"{'seed':>4}  {'tree':<14}{'calls':>6}{'steps':>6}{'steps/calls':>12}"
          f"{'expansion s':>12}{'naive s':>9}{'ratio':>7}  per step")  # fmt: skip
    for seed in seeds_from(args.seeds):
        g = grow(seed, args)
        grown.append(g)
        print(f"{g.seed:>4}  {g.shape:<14}{g.calls:>6}{g.steps:>6}{g.steps / g.calls:>12.2f}"
              f"{g.expansion_s:>12.1f}{g.naive_s:>9.1f}{g.ratio:>7.2f}  {g.per_step}",
              flush=True)  # fmt: skip
    pooled = sum(g.expansion_s for g in grown) / sum(g.naive_s for g in grown)
    interval = pooled_interval(grown)
    shown = f" (95 % bootstrap over seeds {interval[0]:.2f}–{interval[1]:.2f})" if interval else ""
    print(f"\npooled over {len(grown)} seeds: {pooled:.2f}{shown}; target <= 0.50")
    wide = [g for g in grown if g.calls >= 2 * g.steps]
    if wide:
        ratio = sum(g.expansion_s for g in wide) / sum(g.naive_s for g in wide)
        print(f"trees with at least 2 calls a step: {len(wide)}, pooled ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
