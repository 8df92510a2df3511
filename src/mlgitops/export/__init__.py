"""Export the trained pipeline beyond Python: ONNX, a quantized tree/linear format, C and JS.

Every exporter reads one intermediate form (`ir.py`) extracted from the fitted Pipeline by
`extract.py`, so ONNX, the quantized format and the generated scorers cannot drift apart.
"""
