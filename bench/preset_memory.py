"""Peak memory of training each preset, as ``python -m nn train --preset NAME`` runs it.

    python bench/preset_memory.py [PRESET ...] [--epochs 1]

Each preset trains in a child process of its own (``python -m nn train --preset NAME --epochs N
--no-save``: the preset's split, so all 60,000 training images -- 50,000 to learn from and
10,000 scored for validation every epoch -- and the 10,000 test images), which reports its own
high-water mark (VmHWM from /proc/self/status) on exit. Memory does not depend on the number of
epochs (buffers are made once per batch size), so one epoch measures a preset; the accuracy and
seconds printed beside it are one epoch's, not the preset's. Without PRESET: every preset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmark import bench_peak_memory  # noqa: E402

from nn.cli.common import fmt_pct, text_table  # noqa: E402
from nn.services.presets import PRESETS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", nargs="*", metavar="PRESET", help=", ".join(PRESETS))
    parser.add_argument("--epochs", type=int, default=1, help="epochs to train (default 1)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.presets if name not in PRESETS]
    if unknown:
        parser.error(f"unknown preset {', '.join(unknown)}: choose from {', '.join(PRESETS)}")
    if args.epochs < 1:
        parser.error(f"--epochs {args.epochs}: use 1 or more")
    rows = []
    for name in args.presets or list(PRESETS):
        print(f"training {name} for {args.epochs} epoch(s) ...", file=sys.stderr, flush=True)
        m = bench_peak_memory(name, "--epochs", str(args.epochs))
        if "peak_memory_mb" not in m:
            print(f"{name}: failed: {m['peak_memory_error']}", file=sys.stderr)
            return 1
        rows.append(
            [
                name,
                f"{m['peak_memory_mb']:.0f} MB",
                fmt_pct(m["preset_test_accuracy"]),
                f"{m['preset_train_seconds']:.1f} s",
            ]
        )
        print(f"  {name}: {'  '.join(rows[-1][1:])}", file=sys.stderr, flush=True)
    print(text_table(["preset", "peak memory", "test accuracy", "training time"], rows, "lrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
