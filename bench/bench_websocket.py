"""Instruction stream benchmark (same as `skyscreen-hw bench websocket`)."""

from skyscreen_hw.benchmarks import websocket

if __name__ == "__main__":
    websocket.run()
