"""The side-by-side benchmark behind ``tools/benchmark.py``.

* :mod:`.protocol` — the toy training protocol: which config each model trains for each task, on which data,
  for which budget, and which baseline it is compared with.
* the measurement, operator-scaling and report modules — cost (parameters, FLOPs, latency, training step,
  memory), accuracy after the protocol's budget, and the tables / plots written to the results folder.
"""
