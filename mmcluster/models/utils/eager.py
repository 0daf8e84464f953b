"""Whether code runs eagerly, the condition of the CPU fast paths that tracers and compilers must not record."""
import torch


def running_eagerly() -> bool:
    """``True`` unless a tracer (``torch.jit.trace``, the FLOP counter), TorchScript, ``torch.compile`` or the ONNX
    exporter is recording: fast paths built on ops they do not handle (oneDNN's fused linear, sparse CSR
    products) run only then, and the plain form is recorded otherwise."""
    return not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()
                or torch.onnx.is_in_onnx_export())
