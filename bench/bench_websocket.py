"""Instruction stream benchmark (same as `skyscreen-hw bench websocket`)."""

import argparse
import sys

from skyscreen_hw.benchmarks import run_all

if __name__ == "__main__":
    sys.exit(run_all(argparse.Namespace(name="websocket", rounds=0)))
