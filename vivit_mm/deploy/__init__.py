"""Deployment helpers: ONNX export (:mod:`vivit_mm.deploy.onnx`) and
feature extraction (:mod:`vivit_mm.deploy.features`).

Not imported by ``import vivit_mm``; import the submodules explicitly. The
ONNX module needs the ``deploy`` extra (``pip install vivit_mm[deploy]``:
onnx, onnxruntime, onnxscript), imported only inside its functions.
"""
