"""Export a ViViT recognizer's ``backbone + cls_head`` to ONNX and check the
graph with onnxruntime.

The graph
---------
* input ``video``: float32 ``[N, C, T, H, W]`` **after** the data
  preprocessor's normalisation, i.e. ``(pixels - mean) / std`` with the
  config's ``data_preprocessor`` mean/std already applied (the 0-255 frames
  of the test pipeline's ``FormatShape(input_format='NCTHW')``, one view per
  row). ``C``, ``T``, ``H``, ``W`` are the backbone's ``in_channels``,
  ``num_frames`` and ``img_size``, fixed in the graph; ``N`` is fixed too
  unless ``dynamic_batch=True``.
* output ``scores``: float32 ``[N, num_classes]``, the head's logits for each
  view, before MMAction2's ``average_clips`` (average them over the views of
  a video yourself: ``'score'`` is their mean, ``'prob'`` the mean of their
  softmax).

Exporter
--------
``torch.onnx.export(..., dynamo=True)``: the default of torch >= 2.9 and the
only one that is not deprecated (the TorchScript exporter, ``dynamo=False``,
warns that it will be removed). It traces with ``torch.export`` and
translates with onnxscript, so the ``deploy`` extra installs ``onnxscript``
next to onnx and onnxruntime. Its lowest opset is 18: asked for 17, torch
exports opset 18 and tries to down-convert, which fails for these graphs
(onnx's version converter cannot turn the input ``axes`` of ``Squeeze`` /
``ReduceMean`` back into attributes) and leaves opset 18 in the file, so
:func:`export_onnx` refuses ``opset < 18`` instead of writing another opset
than asked for.

Ops that need care (what the exporter makes of them, checked for all four
variants, both tokenisers and both poolings in tests/deploy/test_onnx.py):

* ``F.scaled_dot_product_attention`` (``fused_attn=True``) is decomposed into
  ``MatMul``/``Mul``/``Softmax``/``MatMul`` (the ``1/sqrt(d)`` scale is split
  as ``sqrt`` of it on q and on k); no opset-23 ``Attention`` op is emitted,
  so any onnxruntime with opset 18 runs it. The explicit formula
  (``fused_attn=False``) exports to the same ops.
* the factorised groupings (einops ``rearrange`` in
  ``vivit_mm/models/utils/attention.py``: ``b (t s) ... -> (b t) s ...`` and
  back; the tokenisers' ``b d t h w -> b t (h w) d``) become
  ``Reshape``/``Transpose``; with a dynamic batch the merged axes
  ``(b t)``/``(b s)`` are computed in the graph (``Shape``/``Slice``/
  ``Concat`` into ``Reshape``), so one graph serves any batch.
* ``GELU(approximate='tanh')`` becomes ``Tanh``/``Pow``/``Mul``; LayerNorm is
  ``LayerNormalization``; the tubelet Conv3d and the uniform Conv2d are
  ``Conv``.

onnx, onnxruntime and onnxscript are imported inside the functions.
"""
import os
from typing import Optional

import numpy as np
import torch
from torch import nn

#: Names of the graph's input and output.
INPUT_NAME = 'video'
OUTPUT_NAME = 'scores'
#: The lowest opset the dynamo exporter writes (see the module docstring).
MIN_OPSET = 18
DEFAULT_OPSET = 18
#: What the input is (the graph input's and the model's doc string).
INPUT_DOC = ('float32 video clips [N, C, T, H, W] AFTER the data '
             "preprocessor's normalisation: (pixels - mean) / std with the "
             "config's data_preprocessor mean/std already applied; C, T, H, W "
             "fixed by the backbone's in_channels, num_frames, img_size.")
OUTPUT_DOC = ('float32 class scores [N, num_classes]: the head\'s logits per '
              'clip, before average_clips.')
#: Weights above this size go to an external data file (protobuf's 2 GiB
#: limit).
EXTERNAL_DATA_BYTES = 1536 * 2**20


class ScoresModel(nn.Module):
    """``backbone`` then ``cls_head``: ``[N, C, T, H, W]`` normalised clips
    -> ``[N, num_classes]`` logits (what is exported)."""

    def __init__(self, backbone: nn.Module, cls_head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_head = cls_head

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.cls_head(self.backbone(video))


def scores_model(model: nn.Module) -> ScoresModel:
    """The exported part of a recognizer (eval mode, on its device);
    ``ValueError`` unless its backbone is a ViViT and it has a head."""
    from ..models.backbones.base import BaseViViT
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, BaseViViT):
        raise ValueError(
            'export needs a recognizer with a ViViT backbone, got backbone '
            f'{type(backbone).__name__}.')
    if getattr(model, 'cls_head', None) is None:
        raise ValueError('export needs a recognizer with a cls_head.')
    return ScoresModel(backbone, model.cls_head).eval()


def input_shape(model: nn.Module, batch: int = 1) -> tuple:
    """``(batch, C, T, H, W)`` of the recognizer's backbone."""
    b = model.backbone
    return (batch, b.in_channels, b.num_frames, *b.img_size)


def export_onnx(model: nn.Module,
                path: str,
                opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = False,
                batch: int = 1) -> dict:
    """Export ``model.backbone`` + ``model.cls_head`` (a ViViT recognizer) to
    the ONNX file ``path`` (see the module docstring for the contract).

    Args:
        model: A recognizer (``init_recognizer``'s), moved to the CPU here.
        path (str): The ``.onnx`` file to write (weights above 1.5 GiB go to
            ``path + '.data'`` next to it).
        opset (int): ONNX opset, >= 18.
        dynamic_batch (bool): A symbolic batch axis ``N`` (traced with batch
            2), else the batch is fixed to ``batch``.
        batch (int): The fixed batch size without ``dynamic_batch``.

    Returns:
        dict: ``path``, ``opset``, ``exporter``, ``input_name``,
        ``input_shape`` (``'N'`` for a dynamic batch), ``output_name``,
        ``output_shape``, ``dynamic_batch``, ``external_data`` and
        ``input_doc``.
    """
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(
            f'opset must be an int >= {MIN_OPSET} (the lowest opset of '
            f"torch's dynamo ONNX exporter), got {opset!r}.")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f'batch must be a positive int, got {batch!r}.')
    net = scores_model(model).cpu()
    example = torch.randn(input_shape(model, 2 if dynamic_batch else batch))
    kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                  opset_version=opset, dynamo=True, verbose=False)
    if dynamic_batch:
        kwargs['dynamic_shapes'] = ({0: torch.export.Dim('N')}, )
    with torch.no_grad():
        program = torch.onnx.export(net, (example, ), None, **kwargs)
    graph = program.model.graph
    graph.inputs[0].doc_string = INPUT_DOC
    graph.outputs[0].doc_string = OUTPUT_DOC
    parts = f'{type(model.backbone).__name__} + ' \
        f'{type(model.cls_head).__name__}'
    program.model.doc_string = (
        f'ViViT {parts} (vivit_mm). Input {INPUT_NAME!r}: {INPUT_DOC} Output '
        f'{OUTPUT_NAME!r}: {OUTPUT_DOC}')
    nbytes = sum(p.numel() * p.element_size() for p in net.parameters())
    external = nbytes > EXTERNAL_DATA_BYTES
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    program.save(path, external_data=external)
    shape = list(input_shape(model, batch))
    if dynamic_batch:
        shape[0] = 'N'
    return dict(path=os.fspath(path), opset=opset,
                exporter='torch.onnx.export(dynamo=True)',
                input_name=INPUT_NAME, input_shape=shape,
                output_name=OUTPUT_NAME,
                output_shape=[shape[0], model.cls_head.num_classes],
                dynamic_batch=dynamic_batch, external_data=external,
                input_doc=INPUT_DOC)


def onnx_session(path: str):
    """An onnxruntime CPU session of the graph at ``path`` (the graph is
    first checked with ``onnx.checker``)."""
    import onnx
    import onnxruntime as ort
    onnx.checker.check_model(os.fspath(path))
    return ort.InferenceSession(os.fspath(path),
                                providers=['CPUExecutionProvider'])


def check_onnx(path: str,
               model: nn.Module,
               batch: Optional[int] = None,
               seed: int = 0,
               session=None) -> float:
    """The largest absolute difference between onnxruntime (CPU) and eager
    PyTorch logits for one random normalised input.

    Args:
        path (str): The exported graph.
        model: The recognizer it was exported from.
        batch (int, optional): Batch of the random input. Defaults to the
            graph's batch (2 for a dynamic one).
        seed (int): Seed of the random input.
        session: An onnxruntime session of ``path`` to reuse.
    """
    session = session or onnx_session(path)
    if batch is None:
        dim = session.get_inputs()[0].shape[0]
        batch = dim if isinstance(dim, int) else 2
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(input_shape(model, batch), generator=gen)
    net = scores_model(model).cpu()
    with torch.no_grad():
        ref = net(x).numpy()
    out = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    if out.shape != ref.shape:
        raise ValueError(f'onnxruntime returned {list(out.shape)}, PyTorch '
                         f'{list(ref.shape)}.')
    return float(np.abs(out.astype(np.float64) - ref).max())


__all__ = ['INPUT_NAME', 'OUTPUT_NAME', 'INPUT_DOC', 'MIN_OPSET',
           'DEFAULT_OPSET', 'ScoresModel', 'scores_model', 'input_shape',
           'export_onnx', 'onnx_session', 'check_onnx']
