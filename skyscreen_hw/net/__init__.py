"""Networking: one asyncio thread (`NetworkRuntime`) that owns every socket the daemon listens on or sends from."""

from skyscreen_hw.net.runtime import NetworkError, NetworkRuntime, describe_address, is_local_address

__all__ = ["NetworkError", "NetworkRuntime", "describe_address", "is_local_address"]
