"""Simulator benchmark (same as `skyscreen-hw bench simulator`)."""

from skyscreen_hw.benchmarks import simulator

if __name__ == "__main__":
    simulator.run()
