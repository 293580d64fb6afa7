"""Network receive benchmark (same as `skyscreen-hw bench network_receive`)."""

import argparse
import sys

from skyscreen_hw.benchmarks import run_all

if __name__ == "__main__":
    sys.exit(run_all(argparse.Namespace(name="network_receive", rounds=0)))
