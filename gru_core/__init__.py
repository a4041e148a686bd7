"""gru_core: a Keras 3 GRU layer whose update gate weights the new candidate.

    z_t = σ(W_z·[h_{t-1}, x_t] + b_z)
    r_t = σ(W_r·[h_{t-1}, x_t] + b_r)
    h̃_t = tanh(W·[r_t ⊙ h_{t-1}, x_t] + b)
    h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t
"""

from gru_core.cell import GRUCell
from gru_core.convert import from_keras_gru, to_keras_gru
from gru_core.gates import trace_gates
from gru_core.layer import GRU

__all__ = ["GRU", "GRUCell", "export_litert", "export_onnx", "from_keras_gru", "to_keras_gru", "trace_gates"]


def __getattr__(name: str):
    # The exports need TensorFlow, which the layer itself does not (JAX, torch): imported on first use.
    if name == "export_litert":
        from gru_core.litert import export_litert

        return export_litert
    if name == "export_onnx":
        from gru_core.onnx import export_onnx

        return export_onnx
    raise AttributeError(f"module 'gru_core' has no attribute {name!r}")
