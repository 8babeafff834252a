"""Stage `validate`: check the whole params.yaml before any stage that writes runs.

It depends on every key (so a typo'd key no stage declares is still seen) and writes a marker
whose content changes only with the validation rules, so valid edits rerun no other stage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config.params import load_params
from pipeline.process.errors import exits_cleanly
from pipeline.process.files import write_text

MARKER = "params.yaml passed validation (rules v1)\n"


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    load_params(args.params)
    write_text(args.out, MARKER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
