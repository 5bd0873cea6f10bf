"""Our checkpoint readers never run pickled code: ``safe_load``,
``read_checkpoint`` (``.npz`` with ``allow_pickle=False``) and the
converters that use them refuse a hostile file with a reason, and the
payload (which would create a marker file) never runs."""
import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.convert.conftest import WHY, payload
from vivit_mm import inflate_image_weights
from vivit_mm.convert import export_hf_model_dir
from vivit_mm.convert.io import read_checkpoint, safe_load
from vivit_mm.convert.scenic import convert_scenic_checkpoint
from vivit_mm.models import ViViTM1


def test_safe_load_refuses_hostile(hostile, monkeypatch):
    path, marker = hostile
    # Even the env switch that turns torch's default off does not matter.
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(ValueError, match='Refusing to load checkpoint'):
        safe_load(path)
    with pytest.raises(ValueError, match=f'Refusing to load.*{WHY}'):
        read_checkpoint(path)
    assert not marker.exists()


def test_numpy_arrays_are_not_allowed(tmp_path):
    path = tmp_path / 'array.pth'
    torch.save(dict(x=np.arange(3.0)), path)
    with pytest.raises(ValueError, match='numpy'):
        safe_load(path)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    arrays = dict(cls=np.zeros((1, 1, 32), np.float32),
                  evil=np.array([payload(marker)], dtype=object))
    path = tmp_path / 'vit.npz'
    np.savez(path, **arrays)  # an object array is stored as a pickle
    with pytest.raises(ValueError, match='allow_pickle=False'):
        read_checkpoint(path)
    backbone = ViViTM1(arch=dict(embed_dims=32, num_layers=1, num_heads=4,
                                 feedforward_channels=64),
                       img_size=32, num_frames=4, patch_size=8)
    with pytest.raises(ValueError, match='allow_pickle=False'):
        inflate_image_weights(backbone, str(path))
    with pytest.raises(ValueError, match='allow_pickle=False'):
        convert_scenic_checkpoint(str(path), str(tmp_path / 'o.pth'),
                                  str(tmp_path / 'o.py'))
    assert not marker.exists()
    assert not (tmp_path / 'o.pth').exists()


def test_export_and_scenic_converter_refuse_hostile(tmp_path, hostile):
    path, marker = hostile
    with pytest.raises(ValueError, match=WHY):
        export_hf_model_dir(str(path), str(REPO / 'configs/vivit_m1_k400.py'),
                            str(tmp_path / 'hf'))
    # A torch file handed to the scenic converter is read with safe_load
    # (it is not an .npz or flax file) and refused.
    with pytest.raises(ValueError, match=f'Refusing to load.*{WHY}'):
        convert_scenic_checkpoint(str(path), str(tmp_path / 'o.pth'),
                                  str(tmp_path / 'o.py'))
    assert not marker.exists()
    assert not (tmp_path / 'o.pth').exists()
