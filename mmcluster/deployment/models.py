"""The models the deployment tools compile and export, and the wrapper that makes each a tensor function.

Backbones are found in the registry (every class defined under ``mmcluster.models.backbones``) with their
variant tables, the same discovery as the registry-driven tests (``tests/registry_cases.py``), so a new
backbone is compiled and exported without being listed. Whole models (classifiers, detectors, segmentors) are
built from a config with :func:`mmcluster.visualization.inference.build_model` (no download; weights from an
optional checkpoint through the safe loader).
"""
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

import mmcluster  # noqa: F401  (registration)
from mmcluster.models.utils import discovery
from mmcluster.models.utils.cluster_record import ClusterRecord, ClusterRecorder
from mmcluster.models.utils.discovery import (backbone_classes, smallest_variant, variant_argument,  # noqa: F401
                                              variant_table, variants)

__all__ = ['backbone_classes', 'variant_table', 'variant_argument', 'variants', 'smallest_variant',
           'build_backbone', 'backbone_label', 'find_backbone', 'toy_configs', 'build_config_model',
           'DeployWrapper', 'OnGrid', 'flat_tensors', 'strip_eval_identities', 'compare_outputs',
           'example_data_samples']

#: families whose toy configs use mmcluster heads / necks (``configs/baselines`` holds the toolkits' models)
CONFIG_FAMILIES = ('context_cluster', 'clustr', 'hcformer', 'clusterformer', 'kmax_deeplab')


# ------------------------------------------------------------------------------------------------ backbones
def build_backbone(cls: type, variant: Any = None, **kwargs: Any) -> nn.Module:
    """``cls`` built as ``variant`` (passed as ``arch`` or ``depth``), in eval mode."""
    return discovery.build_backbone(cls, variant, **kwargs).eval()


def backbone_label(cls: type, variant: Any) -> str:
    return cls.__name__ if variant is None else f'{cls.__name__}-{variant}'


def find_backbone(name: str) -> type:
    """The backbone class called ``name``; a clear error listing the registered ones otherwise."""
    classes = {cls.__name__: cls for cls in backbone_classes()}
    if name not in classes:
        raise ValueError(f'unknown backbone {name!r}; registered mmcluster backbones: {sorted(classes)}')
    return classes[name]


# ------------------------------------------------------------------------------------------- whole models
def toy_configs(root: Union[str, Path]) -> List[Path]:
    """The toy configs of the mmcluster families (``configs/<family>/*toy*.py``), sorted."""
    root = Path(root)
    return sorted(p for family in CONFIG_FAMILIES for p in (root / 'configs' / family).glob('*toy*.py'))


def build_config_model(config: Union[str, Path], checkpoint: Optional[str] = None, seed: int = 0) -> nn.Module:
    """The whole model of ``config`` in eval mode (random init with ``seed``; weights from ``checkpoint``)."""
    from mmcluster.visualization.inference import build_model, load_config, load_weights
    model = build_model(load_config(str(config)), seed=seed)
    if checkpoint:
        load_weights(model, checkpoint)
    model.train(False)
    return model


def example_data_samples(model: nn.Module, shape: Tuple[int, int]) -> Optional[list]:
    """The data samples a toolkit model's ``mode='tensor'`` forward reads (one image of ``shape``), through the
    model's own data preprocessor (its padding included); ``None`` for a bare module."""
    if not hasattr(model, 'data_preprocessor'):
        return None
    from mmcluster.visualization.inference import prepare_inputs
    image = torch.zeros(*shape, 3, dtype=torch.uint8).numpy()
    return prepare_inputs(model, image)[1]


# ------------------------------------------------------------------------------------------------ wrapper
def flat_tensors(out: Any) -> Iterator[Tensor]:
    """Every tensor of a (nested) output, in order."""
    if isinstance(out, Tensor):
        yield out
    elif isinstance(out, dict):
        for value in out.values():
            yield from flat_tensors(value)
    elif isinstance(out, (list, tuple)):
        for value in out:
            yield from flat_tensors(value)


def record_labels(record: ClusterRecord) -> Tensor:
    """The hard cluster ids of a record, ``int64 [B, (E,) N]`` (``argmax`` over the memberships when soft)."""
    ids = record.assignment if record.kind == 'hard' else record.assignment.argmax(dim=-1)
    return ids.to(torch.int64)


class OnGrid(nn.Module):
    """A token layer ``layer(tokens, hw)`` on a fixed grid ``hw`` as a function of the tokens alone (so that a
    clustering layer can be compiled or exported by itself, e.g. ClusTR's ``ClusteringAttention``)."""

    def __init__(self, layer: nn.Module, hw: Tuple[int, int]) -> None:
        super().__init__()
        self.layer, self.hw = layer, tuple(hw)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.layer(tokens, self.hw)


def _is_eval_identity(module: nn.Module) -> bool:
    """Stochastic depth and dropout modules: the identity in eval mode."""
    return isinstance(module, nn.Dropout) or type(module).__name__ in ('DropPath', 'DropBlock')


def strip_eval_identities(model: nn.Module) -> int:
    """Replace the modules that are the identity in eval mode (dropout, stochastic depth) by ``nn.Identity``,
    in place; returns how many.

    Why: with mmcv's ``DropPath`` (``return x`` in eval mode) around ClusTR's clustering attention, the
    TorchScript ONNX exporter produced a graph that differs from PyTorch by ~0.2 % (reproduced with
    ``x + drop_path(attn(x))`` against ``x + attn(x)``); without the module the graphs are equal.
    """
    count = 0
    for name, child in list(model.named_children()):
        if _is_eval_identity(child):
            setattr(model, name, nn.Identity())
            count += 1
        else:
            count += strip_eval_identities(child)
    return count


class DeployWrapper(nn.Module):
    """A model as a function of one image batch ``[B, 3, H, W]`` that returns a flat tuple of tensors.

    The outputs are the model's outputs (a backbone's feature maps; a classifier's scores; a toolkit model's
    ``mode='tensor'`` outputs) followed, with ``assignments=True``, by the hard cluster ids (``int64``, argmax
    of the memberships for soft records) of every :class:`ClusterRecorder` in forward order, so a compiled or
    exported graph can be compared on its clusterings. The records are collected by a sink installed once on
    the recorders (what :func:`~mmcluster.models.utils.cluster_record.recording_clusters` does for a ``with``
    block): a traced graph then contains the assignment computation like any other output. Wrap a model for
    export after :func:`strip_eval_identities` (the tools do).

    Args:
        model: a backbone (``model(x)``) or a toolkit model (``model(x, data_samples, mode='tensor')``).
        data_samples: the data samples of a toolkit model (:func:`example_data_samples`); ``None`` for a
            backbone. A classifier of mmpretrain needs none.
        assignments: also return the cluster ids.
    """

    def __init__(self, model: nn.Module, data_samples: Optional[list] = None, assignments: bool = True) -> None:
        super().__init__()
        if model.training:
            raise ValueError('DeployWrapper takes a model in eval mode (call model.train(False) first)')
        self.model = model
        self.data_samples = data_samples
        self.toolkit_model = hasattr(model, 'data_preprocessor')
        self._records: List[ClusterRecord] = []
        self.recorder_names = [name for name, m in model.named_modules() if isinstance(m, ClusterRecorder)]
        if assignments:
            for name, module in model.named_modules():
                if isinstance(module, ClusterRecorder):
                    module._cluster_sink = (name, self._records)

    def release(self) -> None:
        """Stop recording (the model then runs as without the wrapper)."""
        for module in self.model.modules():
            if isinstance(module, ClusterRecorder):
                module._cluster_sink = None
        self._records.clear()

    def run(self, model: Callable, x: Tensor) -> Tuple[Tensor, ...]:
        """The wrapper's outputs with ``model`` (``self.model`` or a compiled version of it) doing the work: the
        records are collected outside ``model``, so a compiled model needs no Python list in its graph."""
        self._records.clear()
        out = model(x, self.data_samples, mode='tensor') if self.toolkit_model else model(x)
        labels = tuple(record_labels(r) for r in self._records)
        self._records.clear()
        return tuple(flat_tensors(out)) + labels

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        return self.run(self.model, x)

    def output_names(self, x: Tensor) -> List[str]:
        """``out{i}`` for the model's outputs, ``assign{j}:<module>[:step]`` for the cluster ids (runs once)."""
        self._records.clear()
        with torch.no_grad():
            out = self.model(x, self.data_samples, mode='tensor') if self.toolkit_model else self.model(x)
        names = [f'out{i}' for i, _ in enumerate(flat_tensors(out))]
        names += [f'assign{j}:{r.name}' + (f':{r.step}' if r.step else '') for j, r in enumerate(self._records)]
        self._records.clear()
        return names


def is_assignment(t: Tensor) -> bool:
    """Cluster ids are the integer outputs of :class:`DeployWrapper`."""
    return not t.is_floating_point()


def compare_outputs(ref: Sequence[Tensor], got: Sequence[Any]) -> Dict[str, Any]:
    """Largest absolute / relative difference of the float outputs and the agreement of the cluster ids.

    Args:
        ref: reference outputs (eager PyTorch).
        got: outputs to check (tensors or numpy arrays), same order.

    Returns:
        ``max_abs``, ``max_rel`` (to the largest reference magnitude of each output), ``assign_agree`` (the
        smallest fraction of equal ids over the assignment outputs; ``None`` without any), ``shape_errors``.
    """
    max_abs = max_rel = 0.0
    agree: Optional[float] = None
    shape_errors = []
    if len(ref) != len(got):
        return dict(max_abs=float('nan'), max_rel=float('nan'), assign_agree=None,
                    shape_errors=[f'{len(got)} outputs, expected {len(ref)}'])
    for i, (a, b) in enumerate(zip(ref, got)):
        b = torch.as_tensor(b)
        if tuple(a.shape) != tuple(b.shape):
            shape_errors.append(f'output {i}: {tuple(b.shape)}, expected {tuple(a.shape)}')
            continue
        if is_assignment(a):
            frac = float((a == b.to(a.dtype)).double().mean()) if a.numel() else 1.0
            agree = frac if agree is None else min(agree, frac)
        else:
            diff = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
            max_abs = max(max_abs, diff)
            max_rel = max(max_rel, diff / max(float(a.double().abs().max()), 1e-30))
    return dict(max_abs=max_abs, max_rel=max_rel, assign_agree=agree, shape_errors=shape_errors)
