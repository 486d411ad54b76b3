"""initserve benchmarks (not tests): generation throughput against ``torch.nn.init``, and range requests.

Run with ``make bench`` (``python -m bench``), or one of them with ``make bench ARGS=generation`` /
``make bench ARGS=ranges``; each rewrites only its own section of ``docs/benchmarks.md``.
"""
