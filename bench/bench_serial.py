"""Serial output benchmark (same as `skyscreen-hw bench serial`)."""

from skyscreen_hw.benchmarks import serial

if __name__ == "__main__":
    serial.run()
