"""Frame path benchmark (same as `skyscreen-hw bench frame`)."""

import argparse
import sys

from skyscreen_hw.benchmarks import run_all

if __name__ == "__main__":
    sys.exit(run_all(argparse.Namespace(name="frame", rounds=0)))
