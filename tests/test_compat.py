"""What ``import vivit_mm`` does to its hosts (vivit_mm/compat.py): it
registers modules and adds exactly ``safe_globals()`` to torch's
weights-only allow-list, nothing else; it checks the host versions; and
with that allow-list, hostile pickles stay refused on every load path of
mmengine, MMAction2 and the tools."""
import json
import re
import subprocess
import sys
from importlib.machinery import SourceFileLoader

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint

from tests.conftest import REPO
from tests.convert.conftest import WHY, hostile  # noqa: F401
from tests.engine.conftest import DropoutToy, toy_runner
from vivit_mm.compat import (HOST_VERSIONS, TESTED_INSTALL,
                             PlainHistoryBuffer, check_host_versions,
                             safe_globals)

HOST = ('torch', 'mmengine', 'mmcv', 'mmaction', 'mmpretrain')

# Run in a fresh interpreter with the host modules `import vivit_mm` loads
# (argv[1]) already imported: snapshot, import vivit_mm, compare.
SNAPSHOT = r'''
import importlib, inspect, json, sys, warnings

HOST = ('torch', 'mmengine', 'mmcv', 'mmaction', 'mmpretrain')
for name in json.loads(sys.argv[1]):  # what `import vivit_mm` loads
    try:
        importlib.import_module(name)
    except Exception:
        pass

import torch
import torch.serialization
from mmengine.fileio.backends import registry_utils
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.registry import Registry
from mmengine.runner.checkpoint import CheckpointLoader

MODULES = ('torch.serialization', 'mmengine.runner.checkpoint',
           'mmengine.runner.runner', 'mmengine.fileio', 'mmengine.fileio.io',
           'mmaction.apis', 'mmaction.apis.inference')


def registries():
    found = {}
    for name, module in list(sys.modules.items()):
        if module is None or name.split('.')[0] not in HOST:
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, Registry):
                found.setdefault(id(value), (f'{name}.{attr}', value))
    return list(found.values())


def snapshot():
    snap = {}
    def cls(where, c):
        snap[f'class {where}'] = (c, dict(vars(c)))
    for where, reg in registries():
        snap[f'registry {where}'] = (reg, dict(reg.module_dict))
        for key, obj in reg.module_dict.items():
            if inspect.isclass(obj):
                cls(f'{obj.__module__}.{obj.__qualname__}', obj)
    snap['CheckpointLoader._schemes'] = (
        CheckpointLoader, dict(CheckpointLoader._schemes))
    cls('CheckpointLoader', CheckpointLoader)
    snap['file backends'] = (registry_utils,
                             dict(registry_utils.backends))
    snap['file backend prefixes'] = (
        registry_utils, dict(registry_utils.prefix_to_backends))
    for c in list(registry_utils.backends.values()):
        cls(f'{c.__module__}.{c.__qualname__}', c)
    cls('HistoryBuffer', HistoryBuffer)
    cls('MessageHub', MessageHub)
    snap['torch.load/save'] = (torch, dict(load=torch.load, save=torch.save))
    for name in MODULES:
        module = sys.modules.get(name)
        if module is not None:
            snap[f'module {name}'] = (module, {
                k: v for k, v in vars(module).items()
                if callable(v) and not k.startswith('__')})
    return snap


def names(entries):
    return {e[1] if isinstance(e, tuple) else
            f'{e.__module__}.{e.__qualname__}' for e in entries}


before = snapshot()
safe_before = names(torch.serialization.get_safe_globals())
filters_before = list(warnings.filters)

import vivit_mm  # noqa: E402
from vivit_mm.compat import safe_globals  # noqa: E402

after = snapshot()
changed = []
for what, (_, old) in before.items():
    new = after[what][1]
    growable = what.startswith(('registry', 'file backend'))
    for key, value in old.items():
        if key not in new:
            changed.append(f'{what}: {key} removed')
        elif new[key] is not value:
            changed.append(f'{what}: {key} replaced')
    if not growable:
        changed += [f'{what}: {key} added' for key in new if key not in old]
grown = names(torch.serialization.get_safe_globals()) - safe_before
if grown != names(safe_globals()):
    changed.append(f'weights-only allow-list grew by {sorted(grown)}, not '
                   f'by safe_globals() = {sorted(names(safe_globals()))}')
if not safe_before <= names(torch.serialization.get_safe_globals()):
    changed.append('weights-only allow-list lost entries')
if list(warnings.filters) != filters_before:
    changed.append('warnings.filters changed: '
                   f'{list(warnings.filters)[:5]} ...')
print(json.dumps(dict(changed=changed, checked=sorted(before))))
'''


def _python(code, *args, cwd):
    proc = subprocess.run([sys.executable, '-c', code, *args], cwd=str(cwd),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_import_changes_nothing_in_the_hosts_but_the_allow_list(tmp_path):
    # Which host modules does `import vivit_mm` load?
    loaded = json.loads(_python(
        'import json, sys; import vivit_mm; print(json.dumps([m for m in '
        f'sys.modules if m.split(".")[0] in {HOST!r}]))', cwd=tmp_path))
    assert 'mmaction.datasets.transforms.loading' in loaded
    report = json.loads(_python(SNAPSHOT, json.dumps(loaded), cwd=tmp_path))
    assert report['changed'] == [], '\n'.join(report['changed'])
    checked = set(report['checked'])
    for name in (
            # transforms: MMAction2's, mmcv's, mmengine's registries
            'class mmaction.datasets.transforms.loading.DecordInit',
            'class mmaction.datasets.transforms.loading.SampleFrames',
            'class mmcv.transforms.loading.LoadImageFromFile',
            'class mmaction.datasets.transforms.wrappers.TorchVisionWrapper',
            # hooks, file backends, the message hub, checkpoint loading
            'class mmengine.hooks.checkpoint_hook.CheckpointHook',
            'class mmengine.fileio.backends.local_backend.LocalBackend',
            'class HistoryBuffer', 'class MessageHub',
            'CheckpointLoader._schemes', 'torch.load/save',
            'module torch.serialization', 'module mmengine.runner.checkpoint'):
        assert name in checked, name
    assert sum(c.startswith('class') for c in checked) > 300


def test_allow_list_is_exact():
    names = {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__name__}'
             for g in safe_globals()}
    numeric = ['Bool'] + [f'{p}{b}' for p in ('Int', 'UInt')
                          for b in (8, 16, 32, 64)] + [
                              f'Float{b}' for b in (16, 32, 64)]
    assert names == {
        'mmengine.logging.history_buffer.HistoryBuffer',
        'vivit_mm.compat.PlainHistoryBuffer',
        'numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar',
        'numpy.dtype'
    } | {f'numpy.dtypes.{n}DType' for n in numeric}
    for name in names:  # what the torch-wide allow-list now contains
        assert name in {g[1] if isinstance(g, tuple) else
                        f'{g.__module__}.{g.__name__}'
                        for g in torch.serialization.get_safe_globals()}


def test_plain_history_buffer_pickles_as_plain_data(tmp_path):
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer([1.0, 2.0, 4.0], [1, 1, 2], max_length=10)
    plain = PlainHistoryBuffer.of(buf)
    path = tmp_path / 'buf.pth'
    torch.save(dict(buf=plain), path)
    back = torch.load(path, weights_only=True)['buf']
    assert type(back) is PlainHistoryBuffer
    np.testing.assert_array_equal(back.data[0], [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(back.data[1], [1, 1, 2])
    assert back.max_length == 10 and back.mean() == pytest.approx(7 / 4)


# --------------------------------------------------------------------------
# Host versions.
@pytest.mark.parametrize('package, version', [
    ('mmengine', '0.9.1'), ('mmengine', '0.11.0'), ('torch', '2.5.0'),
    ('mmaction2', '1.0.2'), ('mmaction2', '1.3.0')])
def test_unsupported_host_versions_fail_with_the_fix(package, version):
    with pytest.raises(ImportError) as info:
        check_host_versions({package: version})
    msg = str(info.value)
    assert f'{package} {version} is installed' in msg
    assert f'vivit_mm needs {package} >=' in msg
    assert TESTED_INSTALL in msg
    assert 'pip install torch==2.14.1 torchvision==0.29.1 ' \
        'mmengine==0.10.7' in msg


def test_installed_host_versions_pass():
    check_host_versions()
    check_host_versions(dict(torch='2.14.1+cu130', mmengine='0.10.7'))
    assert [p for p, _, _ in HOST_VERSIONS] == ['torch', 'mmengine',
                                                 'mmaction2']


def _mmaction_tree(tmp_path, with_drn):
    """A folder shaped like the ``mmaction`` package, with or without
    ``models/localizers/drn/drn.py`` (a folder without ``__init__.py``,
    which the PyPI 1.2.0 wheel therefore lacks)."""
    folder = tmp_path / 'mmaction'
    (folder / 'models' / 'localizers').mkdir(parents=True)
    if with_drn:
        (folder / 'models' / 'localizers' / 'drn').mkdir()
        (folder / 'models' / 'localizers' / 'drn' / 'drn.py').touch()
    return str(folder)


# What a source install of MMAction2 1.2.0 works with.
GOOD_12 = {'mmcv': None, 'mmcv-lite': '2.0.1', 'transformers': '4.55.4',
           'timm': '1.0.31'}


def test_mmaction_1_2_from_source_passes(tmp_path):
    folder = _mmaction_tree(tmp_path, with_drn=True)
    check_host_versions({'mmaction2': '1.2.0'}, folder, GOOD_12)
    check_host_versions({'mmaction2': '1.2.0'}, folder,
                        {**GOOD_12, 'transformers': None, 'timm': None})
    # the full mmcv instead of mmcv-lite
    check_host_versions({'mmaction2': '1.2.0'}, folder,
                        {**GOOD_12, 'mmcv': '2.1.0', 'mmcv-lite': None})


def test_the_broken_pypi_wheel_of_mmaction_1_2_is_named(tmp_path):
    folder = _mmaction_tree(tmp_path, with_drn=False)
    with pytest.raises(ImportError) as info:
        check_host_versions({'mmaction2': '1.2.0'}, folder, GOOD_12)
    msg = str(info.value)
    assert 'localizers/drn is missing' in msg and 'PyPI' in msg
    assert 'pip install -v -e .' in msg and 'mmaction2==1.1.0' in msg
    # 1.1.0 has no drn folder either: only 1.2 needs it
    check_host_versions({'mmaction2': '1.1.0'}, folder, GOOD_12)


@pytest.mark.parametrize('extras, expected', [
    ({'transformers': '5.25.0'}, '"transformers>=4.44,<4.56" timm'),
    ({'transformers': '4.56.0'}, '"transformers>=4.44,<4.56" timm'),
    ({'timm': None}, 'pip install timm'),
])
def test_mmaction_1_2_with_transformers_it_cannot_import(tmp_path, extras,
                                                         expected):
    folder = _mmaction_tree(tmp_path, with_drn=True)
    with pytest.raises(ImportError) as info:
        check_host_versions({'mmaction2': '1.2.0'}, folder,
                            {**GOOD_12, **extras})
    assert expected in str(info.value)
    # MMAction2 1.1 does not import its multimodal models: no check
    check_host_versions({'mmaction2': '1.1.0'}, folder,
                        {**GOOD_12, **extras})


def test_missing_mmcv_is_named_with_both_ways_to_install_it():
    with pytest.raises(ImportError) as info:
        check_host_versions(extras={'mmcv': None, 'mmcv-lite': None})
    msg = str(info.value)
    assert 'neither mmcv nor mmcv-lite is installed' in msg
    assert 'pip install mmcv-lite==2.0.1' in msg and 'mim install' in msg


def test_missing_mmaction_is_named():
    with pytest.raises(ImportError, match='needs mmaction2, which is not'):
        check_host_versions({'mmaction2': None})


def test_data_sample_accessors_read_the_installed_mmaction_fields():
    """pred_score_of / gt_label_of / set_gt_label work on the installed
    MMAction2's ActionDataSample (1.1: pred_scores.item, gt_labels.item;
    1.2: pred_score, gt_label)."""
    from mmaction.structures import ActionDataSample

    from vivit_mm.compat import gt_label_of, pred_score_of, set_gt_label
    sample = set_gt_label(ActionDataSample(), 3)
    sample.set_pred_score(torch.tensor([0.1, 0.7, 0.2]))
    assert gt_label_of(sample).tolist() == [3]
    assert pred_score_of(sample).tolist() == pytest.approx([0.1, 0.7, 0.2])


# --------------------------------------------------------------------------
# Hostile pickles: refused by torch (weights_only=True) on mmengine's and
# MMAction2's load paths, and by the tools' pre-flight, and never run.
REFUSED = (r'weights_only|Weights only load failed')


def test_mmengine_load_paths_refuse_hostile(hostile, tmp_path):
    import pickle
    path, marker = hostile
    with pytest.raises(pickle.UnpicklingError, match=REFUSED):
        _load_checkpoint(str(path), map_location='cpu')  # load_from, resume
    with pytest.raises(pickle.UnpicklingError, match=REFUSED):
        load_checkpoint(DropoutToy(), str(path))
    runner = toy_runner(tmp_path / 'wd', 1)
    with pytest.raises(pickle.UnpicklingError, match=REFUSED):
        runner.load_checkpoint(str(path))
    with pytest.raises(pickle.UnpicklingError, match=REFUSED):
        runner.resume(str(path))
    assert not marker.exists()


def _tiny_m4_cfg():
    cfg = Config.fromfile(str(REPO / 'configs' / 'vivit_m4_k400.py'))
    cfg.model.backbone.update(
        arch=dict(embed_dims=32, num_layers=1, num_heads=4,
                  feedforward_channels=64), img_size=32, num_frames=4)
    cfg.model.cls_head.in_channels = 32
    return cfg


def test_init_recognizer_refuses_hostile(hostile):
    import pickle

    from mmaction.apis import init_recognizer
    path, marker = hostile
    with pytest.raises(pickle.UnpicklingError, match=REFUSED):
        init_recognizer(_tiny_m4_cfg(), str(path), device='cpu')
    assert not marker.exists()


def test_pretrained_init_cfg_refuses_hostile(hostile):
    import pickle

    from mmaction.registry import MODELS
    path, marker = hostile
    backbone = MODELS.build(dict(
        _tiny_m4_cfg().model.backbone,
        init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    with pytest.raises(pickle.UnpicklingError, match=REFUSED):
        backbone.init_weights()
    assert not marker.exists()


@pytest.mark.parametrize('how', ['resume', 'load_from', 'test'])
def test_tools_refuse_hostile_checkpoint(tmp_path, hostile, how):
    path, marker = hostile
    tool = 'test' if how == 'test' else 'train'
    module = SourceFileLoader(f'vivit_{tool}_tool', str(
        REPO / 'tools' / f'{tool}.py')).load_module()
    cfg = str(REPO / 'configs' / 'vivit_m2_k400.py')
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'list.txt').write_text('v.mp4 0\n')
    loaders = (('test_dataloader.dataset', ) if how == 'test' else
               ('train_dataloader.dataset.dataset', 'val_dataloader.dataset'))
    options = [f'{ds}.{k}={v}' for ds in loaders for k, v in (
        ('ann_file', data / 'list.txt'), ('data_prefix.video', data))]
    args = [cfg, '--work-dir', str(tmp_path / 'wd')]
    if how == 'test':
        args = [cfg, str(path), '--work-dir', str(tmp_path / 'wd')]
    elif how == 'resume':
        args += ['--resume', str(path)]
    else:
        options.append(f'load_from={path}')
    # The tools stop with the pre-flight's ValueError (or exit with it).
    with pytest.raises((ValueError, SystemExit)) as info:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(Runner, 'from_cfg', _never_built)
            module.main(args + ['--cfg-options'] + options)
    assert re.search(f'Refusing to load.*{WHY}', str(info.value))
    assert not marker.exists()
    assert not list((tmp_path / 'wd').glob('*.pth'))  # nothing trained


def _never_built(cfg):
    raise AssertionError('the Runner was built: the pre-flight check let a '
                         'hostile checkpoint through')
