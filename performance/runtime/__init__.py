"""The runtime: everything that wires the engine, the worker and the adapters for one session."""
