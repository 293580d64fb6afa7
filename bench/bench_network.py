"""Network output benchmark (same as `skyscreen-hw bench network`)."""

import argparse
import sys

from skyscreen_hw.benchmarks import run_all

if __name__ == "__main__":
    sys.exit(run_all(argparse.Namespace(name="network", rounds=0)))
