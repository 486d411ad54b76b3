"""initserve: a REST microservice serving deterministic, seeded, initialized weight tensors."""

__version__ = "0.1.0"
