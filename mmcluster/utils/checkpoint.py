"""Reading checkpoints written by other code bases without running pickled code.

Every converter in ``tools/model_converters/`` reads official release files through this module. Those files
are pickles, and unpickling a file from the internet can run any code its author chose (a ``__reduce__``
returning ``os.system``). :func:`load_checkpoint_safely` therefore always unpickles with torch's restricted
``weights_only`` unpickler and allows, on top of tensors and the builtin containers, only the plain data types
that the real files contain:

==========================================  =====================================================================
writer                                      content beyond tensors / dicts / lists / numbers / strings
==========================================  =====================================================================
timm ``CheckpointSaver`` (``*.pth.tar``)    ``args``: :class:`argparse.Namespace`; ``optimizer`` and
                                            ``amp_scaler`` state dicts; ``state_dict_ema``; ``metric`` (float or
                                            numpy scalar)
mmcv 1.x / mmdet 2.x / mmseg 0.x            ``meta`` (``mmcv_version``, ``CLASSES`` tuple, ``PALETTE``, config text,
                                            ``hook_msgs`` with numpy scalars), ``optimizer``
mmengine                                    numpy arrays / scalars / dtypes, ``HistoryBuffer``,
                                            :class:`collections.Counter` (the list in :mod:`mmcluster.compat`)
detectron2 ``*.pth`` / ``*.pkl``            ``model`` of tensors or numpy arrays; ``.pkl`` files are plain pickles
                                            (no torch header), read with the same restricted unpickler
==========================================  =====================================================================

Anything else (any other class or function named in the pickle) is refused with
:class:`UnsafeCheckpointError`, whose message names the global and says how to allow it if the file is trusted
(``extra_types``). Nothing named in a refused pickle is ever called. A file that is no checkpoint at all (empty,
text, a zip archive that ``torch.save`` did not write, a truncated file) raises :class:`NotACheckpointError`
naming the file and what it looks like, instead of an unpickler's ``KeyError: 101`` or ``EOFError``. Plain
pickles of every protocol are read (torch's restricted unpickler knows only protocol 2; newer ones, the default of
``pickle.dump`` since Python 3.8 and what detectron2's ``convert-torchvision-to-d2.py`` writes, go through an
allowlist-only :class:`pickle.Unpickler`, the "restricting globals" recipe of the :mod:`pickle` docs).

Helpers for converters: :func:`pick_state_dict` (``state_dict`` / ``state_dict_ema`` / ``model`` / raw, numpy
arrays to tensors), :func:`strip_prefix`, and :func:`check_state_dict` which compares a converted state dict
with a model and reports missing, unexpected and shape-mismatched keys (:class:`KeyReport`; a converter exits
with ``report.exit_code``, non-zero unless the match is exact). The command-line side that the converters share:
:func:`arch_arg` (``--arch`` as a name or a JSON dict), :func:`load_source` (safe load + state dict + DDP prefix,
``None`` after printing the error), :func:`print_dropped` and :func:`save_converted`.
"""
import argparse
import collections
import json
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

__all__ = [
    'UnsafeCheckpointError', 'NotACheckpointError', 'KeyReport', 'checkpoint_allowlist', 'load_checkpoint_safely',
    'pick_state_dict', 'strip_prefix', 'check_state_dict', 'arch_arg', 'load_source', 'print_dropped',
    'save_converted'
]

SafeGlobal = Union[Callable, Tuple[Callable, str]]
EMA_KEYS = ('state_dict_ema', 'ema_state_dict')  # timm CheckpointSaver, mmengine EMAHook
STATE_DICT_KEYS = ('state_dict', 'model', 'module')  # timm / mmcv / mmengine, detectron2, DeiT-style


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint names a class or function outside the allowlist; nothing in it was executed."""


class NotACheckpointError(ValueError):
    """The file is not a checkpoint (empty, text, a zip archive torch did not write, truncated)."""


def _numpy_globals() -> List[SafeGlobal]:
    """numpy reconstructors under both module paths (files written with numpy 1.x and 2.x)."""
    try:
        from numpy.core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 2
        from numpy._core.multiarray import _reconstruct, scalar
    try:  # protocol-5 pickles rebuild arrays from a buffer
        from numpy.core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 2
        from numpy._core.numeric import _frombuffer
    out: List[SafeGlobal] = []
    for fn in (_reconstruct, scalar):
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            out.append((fn, f'{module}.{fn.__name__}'))
    for module in ('numpy.core.numeric', 'numpy._core.numeric'):
        out.append((_frombuffer, f'{module}._frombuffer'))
    dtypes = ('bool', 'uint8', 'uint16', 'uint32', 'uint64', 'int8', 'int16', 'int32', 'int64', 'float16',
              'float32', 'float64', 'complex64', 'complex128', 'str', 'bytes')  # never ``object``
    out += [np.ndarray, np.dtype] + [type(np.dtype(name)) for name in dtypes]
    return out


def checkpoint_allowlist(extra_types: Iterable[SafeGlobal] = ()) -> List[SafeGlobal]:
    """The globals :func:`load_checkpoint_safely` allows (torch's defaults come on top).

    The types mmengine's own checkpoints need come from :func:`mmcluster.compat.checkpoint_safe_globals`
    (one list for both); this adds what timm, mmcv 1.x and detectron2 files hold.
    """
    from mmcluster.compat import checkpoint_safe_globals
    allowed: List[SafeGlobal] = list(checkpoint_safe_globals())
    allowed += _numpy_globals()
    allowed += [
        argparse.Namespace,  # timm ``args``
        collections.OrderedDict,
    ]  # defaultdict / deque cannot be filled by torch's restricted unpickler (and no release file has them)
    allowed += list(extra_types)
    unique: List[SafeGlobal] = []
    for g in allowed:
        if g not in unique:
            unique.append(g)
    return unique


class _TemporarySafeGlobals:
    """``torch.serialization.safe_globals`` for only the entries not already allowed process-wide.

    torch's context manager removes its entries on exit; entries that :mod:`mmcluster.compat` registered
    globally (for mmengine's Runner) must survive, so they are left out of the temporary set.
    """

    def __init__(self, entries: Sequence[SafeGlobal]) -> None:
        present = set(torch.serialization.get_safe_globals())
        self.entries = [e for e in entries if e not in present]

    def __enter__(self):
        torch.serialization.add_safe_globals(self.entries)
        return self

    def __exit__(self, *exc) -> None:
        from torch import _weights_only_unpickler
        _weights_only_unpickler._remove_safe_globals(self.entries)


def _refusal(path: str, err: Exception) -> UnsafeCheckpointError:
    msg = str(err)
    # torch's messages: "GLOBAL posix.system was not an allowed global", "... unrecognized function <f>",
    # "Can only build ... but got <class 'x.Y'>"
    found = (re.search(r'GLOBAL (\S+)', msg) or re.search(r"<class '([^']+)'>", msg)
             or re.search(r'unrecognized function (\S+)', msg))
    what = f'the global {found.group(1)!r}' if found else 'an object outside the allowlist'
    lines = [ln for ln in msg.splitlines() if ln.strip()]
    first = next((ln for ln in lines if found and found.group(1) in ln), lines[0] if lines else type(err).__name__)
    return UnsafeCheckpointError(
        f'{path}: refused to unpickle {what}. The file names a class or function that is not plain checkpoint '
        'data (allowed: tensors, containers, numbers, strings, numpy arrays/scalars/dtypes, argparse.Namespace; '
        'see mmcluster.utils.checkpoint). Nothing from the file was run. If you trust this file and the type is '
        'plain data, allow it for this call: load_checkpoint_safely(path, extra_types=[<the type>]).'
        f'\n(torch: {first})')


def _restricted_pickle_load(f, encoding: str = 'latin1') -> Any:
    """Plain pickle (detectron2 ``.pkl``) through torch's ``weights_only`` unpickler (protocols 0-2)."""
    from torch import _weights_only_unpickler
    return _weights_only_unpickler.Unpickler(f, encoding=encoding).load()


#: torch's default ``weights_only`` globals that plain (non-torch) pickles may need; the rest of torch's list
#: rebuilds tensors from storages, which only ``torch.save`` files carry
_PLAIN_PICKLE_DEFAULTS = ('collections.OrderedDict', 'collections.Counter', '_codecs.encode', 'builtins.set',
                          'builtins.frozenset', 'builtins.bytearray', 'builtins.complex')


class _AllowlistUnpickler(pickle.Unpickler):
    """:class:`pickle.Unpickler` that resolves only allowlisted globals (any protocol, 0-5).

    Every class or function a pickle can call is looked up through :meth:`find_class`; anything outside the
    allowlist raises before it is imported, so nothing from the file runs. Persistent ids (torch storages) are
    refused by the base class (no ``persistent_load``).
    """

    def __init__(self, f, path: str, encoding: str = 'latin1') -> None:
        super().__init__(f, encoding=encoding)
        from torch import _weights_only_unpickler as wo
        allowed = {name: obj for name, obj in wo._get_allowed_globals().items() if name in _PLAIN_PICKLE_DEFAULTS}
        allowed.update(wo._get_user_allowed_globals())  # ours (the _TemporarySafeGlobals) and mmcluster.compat's
        self.allowed = allowed
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        full = f'{module}.{name}'
        if full in self.allowed:
            return self.allowed[full]
        raise _refusal(self.path, pickle.UnpicklingError(f'Unsupported global: GLOBAL {full}'))


def _not_a_checkpoint(path: str, why: str) -> NotACheckpointError:
    return NotACheckpointError(
        f'{path} is not a checkpoint: {why}. Expected a file written by torch.save (a zip archive holding '
        '<name>/data.pkl, or the legacy format) or a pickle of a dict (e.g. a detectron2 .pkl).')


def _pickle_protocol(head: bytes) -> Optional[int]:
    """The protocol of a binary pickle (``PROTO`` opcode first), None for anything else."""
    return head[1] if len(head) >= 2 and head[0] == 0x80 else None


def load_checkpoint_safely(path: str,
                           extra_types: Iterable[SafeGlobal] = (),
                           map_location: Union[str, torch.device] = 'cpu') -> Any:
    """Read a checkpoint file without executing pickled code.

    Args:
        path: a ``torch.save`` file (zip or legacy format) or a plain pickle (detectron2 ``.pkl``, any protocol
            from 2 on).
        extra_types: further classes / functions to allow for this call only (``obj`` or ``(obj, 'module.name')``),
            for trusted files that hold other plain data types.
        map_location: where tensors go.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        FileNotFoundError: no such file.
        NotACheckpointError: the file is not a checkpoint (empty, text, a zip archive torch did not write,
            truncated, a protocol-0/1 text pickle).
        UnsafeCheckpointError: the file names a global outside the allowlist (the message names it).
    """
    path = str(path)
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    if file.is_dir():
        raise _not_a_checkpoint(path, 'it is a directory')
    if file.stat().st_size == 0:
        raise _not_a_checkpoint(path, 'the file is empty')
    with _TemporarySafeGlobals(checkpoint_allowlist(extra_types)):
        try:
            if zipfile.is_zipfile(path):
                try:
                    return torch.load(path, map_location=map_location, weights_only=True)
                except RuntimeError as err:
                    if 'Weights only load failed' in str(err) or 'Unsupported global' in str(err):
                        raise
                    names = zipfile.ZipFile(path).namelist()
                    raise _not_a_checkpoint(path, f'a zip archive that torch.save did not write (members '
                                            f'{names[:5]}; torch: {str(err).splitlines()[0]})') from None
            with open(path, 'rb') as f:
                head = f.read(2)
                protocol = _pickle_protocol(head)
                if protocol is None and head == b'PK':
                    raise _not_a_checkpoint(path, 'a damaged zip archive (truncated?)')
                if protocol is None:
                    raise _not_a_checkpoint(path, f'it is neither a zip archive nor a binary pickle (it starts with '
                                            f'{head + f.read(14)!r})')
                f.seek(0)
                if protocol > 2:  # torch's restricted unpickler reads protocol 2 only
                    return _AllowlistUnpickler(f, path).load()
                first = _restricted_pickle_load(f)
                if first == torch.serialization.MAGIC_NUMBER:  # legacy torch.save format
                    f.seek(0)
                    return torch.load(f, map_location=map_location, weights_only=True)
                return first
        except (UnsafeCheckpointError, NotACheckpointError):
            raise
        except pickle.UnpicklingError as err:
            if 'Unsupported operand' in str(err) or 'invalid load key' in str(err):
                raise _not_a_checkpoint(path, f'not a valid pickle ({err})') from None
            raise _refusal(path, err) from None
        except RuntimeError as err:  # torch wraps the unpickler's error on some paths
            if 'Weights only load failed' in str(err) or 'Unsupported global' in str(err):
                raise _refusal(path, err) from None
            if 'EOF' in str(err) or 'corrupt' in str(err):  # a cut legacy file ("unexpected EOF, expected ...")
                raise _not_a_checkpoint(path, f'truncated or corrupt (torch: {err})') from None
            raise
        except (EOFError, KeyError, IndexError, struct.error, UnicodeDecodeError) as err:
            # what an unpickler raises on a truncated or garbled stream (KeyError: a memo lookup of garbage)
            raise _not_a_checkpoint(path, f'truncated or corrupt ({type(err).__name__}: {err})') from None


def _as_tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


def pick_state_dict(checkpoint: Any, ema: bool = False,
                    keys: Sequence[str] = STATE_DICT_KEYS) -> 'collections.OrderedDict[str, torch.Tensor]':
    """The model weights in a loaded checkpoint, numpy arrays converted to tensors.

    Args:
        checkpoint: what :func:`load_checkpoint_safely` returned.
        ema: take the EMA weights (timm ``state_dict_ema``, mmengine ``ema_state_dict``); an error if absent.
        keys: where to look for the weights, in order; a dict of tensors without any of them is a raw state dict.

    Raises:
        KeyError: ``ema`` and no EMA weights (the message lists the checkpoint's keys).
        TypeError: nothing that looks like a state dict.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'a checkpoint must be a dict, got {type(checkpoint).__name__}')
    if ema:
        found = [k for k in EMA_KEYS if isinstance(checkpoint.get(k), Mapping)]
        if not found:
            raise KeyError(f'EMA weights requested (--ema) but the checkpoint has none of {list(EMA_KEYS)}; '
                           f'its top-level keys: {sorted(map(str, checkpoint))}')
        sd = checkpoint[found[0]]
    else:
        sd = next((checkpoint[k] for k in keys if isinstance(checkpoint.get(k), Mapping)), checkpoint)
    out = collections.OrderedDict((k, _as_tensor(v)) for k, v in sd.items())
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f'not a state dict: {len(bad)} entries are not tensors (e.g. {bad[:5]}); '
                        f'top-level keys: {sorted(map(str, checkpoint))}')
    return out


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str,
                 drop_others: bool = True) -> Tuple['collections.OrderedDict[str, torch.Tensor]', List[str]]:
    """Remove ``prefix`` from the keys that have it.

    Returns ``(state_dict, dropped)``: with ``drop_others`` the keys without the prefix are left out and listed
    in ``dropped`` (e.g. a detector's neck and heads when taking its ``backbone.``), else kept unchanged.
    """
    out: 'collections.OrderedDict[str, torch.Tensor]' = collections.OrderedDict()
    dropped: List[str] = []
    for k, v in state_dict.items():
        if k.startswith(prefix):
            out[k[len(prefix):]] = v
        elif drop_others:
            dropped.append(k)
        else:
            out[k] = v
    return out, dropped


@dataclass
class KeyReport:
    """How a state dict matches a model: every difference, nothing silent."""
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def exit_code(self) -> int:
        """0 when exact, 1 otherwise (a converter's exit status)."""
        return 0 if self.exact else 1

    def __str__(self) -> str:
        lines = [f'missing keys ({len(self.missing)}): {self.missing}',
                 f'unexpected keys ({len(self.unexpected)}): {self.unexpected}',
                 f'shape mismatches ({len(self.mismatched)}): ' +
                 str([f'{k}: checkpoint {tuple(a)} vs model {tuple(b)}' for k, a, b in self.mismatched])]
        return '\n'.join(lines)


def check_state_dict(state_dict: Mapping[str, torch.Tensor], model: Union[nn.Module, Mapping[str, Any]],
                     load: bool = False) -> KeyReport:
    """Compare ``state_dict`` with a model (or its state dict); with ``load``, load it strictly when exact.

    Raises:
        ValueError: ``load`` and the match is not exact (the message is the report).
    """
    own = model.state_dict() if isinstance(model, nn.Module) else model
    report = KeyReport(
        missing=[k for k in own if k not in state_dict],
        unexpected=[k for k in state_dict if k not in own],
        mismatched=[(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
                    if k in own and tuple(v.shape) != tuple(own[k].shape)])
    if load:
        if not report.exact:
            raise ValueError(f'state dict does not match {type(model).__name__}:\n{report}')
        model.load_state_dict(state_dict, strict=True)
    return report


# --------------------------------------------------------------------------- converter command lines
def arch_arg(text: str) -> Union[str, dict]:
    """A converter's ``--arch``: a variant name, or a custom arch as a JSON dict."""
    return json.loads(text) if text.strip().startswith('{') else text


def load_source(path: str, ema: bool = False) -> Optional[Tuple[Any, 'collections.OrderedDict[str, torch.Tensor]']]:
    """A converter's input: ``(checkpoint, state_dict)`` read with :func:`load_checkpoint_safely` and
    :func:`pick_state_dict`, without the ``module.`` prefix of a DDP-wrapped save.

    Returns None after printing ``ERROR: ...`` when the file is missing, not a checkpoint, refused, or holds no (EMA)
    state dict; the converter then exits with status 2.
    """
    try:
        checkpoint = load_checkpoint_safely(path)
        state_dict = pick_state_dict(checkpoint, ema=ema)
    except (UnsafeCheckpointError, NotACheckpointError, FileNotFoundError) as err:
        print(f'ERROR: {err}')
        return None
    except (KeyError, TypeError) as err:
        print(f'ERROR: {path}: {err.args[0] if err.args else err}')
        return None
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict, _ = strip_prefix(state_dict, 'module.')
    return checkpoint, state_dict


def print_dropped(dropped: Sequence[str], limit: int = 20) -> None:
    """Report the source keys a converter left out (the first ``limit`` of them)."""
    if dropped:
        print(f'dropped {len(dropped)} keys: {list(dropped[:limit])}{" ..." if len(dropped) > limit else ""}')


def save_converted(dst: str, state_dict: Mapping[str, torch.Tensor], meta: dict) -> None:
    """Write ``dict(state_dict=..., meta=...)`` to ``dst`` (parent folders created)."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), dst)
