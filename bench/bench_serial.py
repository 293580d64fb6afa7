"""Serial output benchmark (same as `skyscreen-hw bench serial`)."""

import argparse
import sys

from skyscreen_hw.benchmarks import run_all

if __name__ == "__main__":
    sys.exit(run_all(argparse.Namespace(name="serial", rounds=0)))
