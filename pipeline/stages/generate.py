"""Stage `generate`: the train/val/test splits as data/{train,val,test}.npz."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.config.params import load_params
from pipeline.config.schema import DataParams
from pipeline.data.splits import save_split
from pipeline.data.synthetic import SPLITS, generate
from pipeline.data.table import table_splits
from pipeline.process.errors import exits_cleanly


def run(*, data: DataParams, seed: int, out_dir: Path) -> dict[str, int]:
    # The whole table is read and checked before the first split is written.
    splits = table_splits(data, seed) if data.kind == "table" else generate(data, seed)
    if left_out := splits["train"].rows_without_target:
        print(f"{data.path}: {left_out} row(s) without a {data.target!r} value left out")
    # Written side by side: a large split's file is mostly copies and checksums that release
    # the GIL, and each file is replaced whole (atomic_path), so none is ever half written.
    with ThreadPoolExecutor(max_workers=len(SPLITS)) as pool:
        list(pool.map(lambda name: save_split(splits[name], out_dir / f"{name}.npz"), SPLITS))
    return {name: len(split) for name, split in splits.items()}


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    sizes = run(data=params.data, seed=params.seed, out_dir=args.out)
    print("generated " + ", ".join(f"{name}: {n} rows" for name, n in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
