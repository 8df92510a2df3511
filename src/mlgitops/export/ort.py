"""ONNX Runtime sessions, as every graph of the project runs: the serving fast path, the exported
model.onnx in a pod, and the export stage's parity checks.

Only `onnxruntime` is imported (lazily), not `onnx`: a pod that serves model.onnx needs no more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onnx import ModelProto


def session(model: ModelProto | bytes) -> Any:
    """A session on one thread for a model or its bytes: a serving worker scores one request at
    a time, and intra-op threads would only fight its event loop."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
