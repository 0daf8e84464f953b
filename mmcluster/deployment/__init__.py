"""Compiled and exported inference paths (``torch.compile``, ONNX + onnxruntime) for every mmcluster model.

* :mod:`.models` — which models (every registered backbone and its smallest variant, the toy configs' whole
  models, classifiers from a config + checkpoint) and :class:`~.models.DeployWrapper`, which makes any of them a
  function of one image tensor returning plain tensors: the features (or scores) **and the cluster assignments**
  of every clustering module (:mod:`mmcluster.models.utils.cluster_record`), so that a compiled or exported
  graph is checked on its clusterings too, not only on its features;
* :mod:`.compile_check` — graph breaks (``torch._dynamo.explain``), eager vs compiled outputs and latency, and
  compile time;
* :mod:`.onnx_export` — export with ``torch.onnx`` and comparison with onnxruntime at the export size and at
  other sizes, and latency beside PyTorch's.

The command-line tools are ``tools/deployment/compile_check.py`` and ``tools/deployment/pytorch2onnx.py``;
results and the reasons behind every graph break: ``docs/deployment.md``.
"""
