"""Test doubles that ship with the engine: the loopback upstream used by tests and benchmarks."""
