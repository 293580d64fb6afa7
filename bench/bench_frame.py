"""Frame path benchmark (same as `skyscreen-hw bench frame`)."""

from skyscreen_hw.benchmarks import frame

if __name__ == "__main__":
    frame.run()
