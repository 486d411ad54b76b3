"""initserve benchmarks (not tests): generation throughput against ``torch.nn.init``.

Run with ``make bench`` (``python -m bench``); the run rewrites ``docs/benchmarks.md``.
"""
