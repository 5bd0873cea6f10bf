"""tools/data/build_video_lists.py: a class-folder tree of generated videos
(with an empty, a truncated, a non-video and a hidden file) -> lists,
classes.txt and the fine-tuning config; the split's determinism and
per-class shares; every error case."""
import re
import subprocess
import sys
from collections import Counter

import pytest
from mmengine.config import Config

from tests.conftest import REPO
from tests.datasets.conftest import write_video
from tests.tools.helpers import load_tool
from vivit_mm.utils.build import build_model

#: class -> readable videos; 'zebra' is deliberately sorted last.
CLASSES = {'bowling': 6, 'archery': 5, 'zebra': 3}
SYNTHETIC = REPO / 'configs' / 'vivit_m2_synthetic.py'


TOOL = load_tool('tools/data/build_video_lists.py')


def make_tree(root, classes=CLASSES, frames=6):
    """``root/<class>/<class><i>.mp4`` of tiny generated videos."""
    for c, n in classes.items():
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_video(root / c / f'{c}{i}.mp4', frames, seed=i)
    return root


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp('videos'))
    good = (root / 'archery' / 'archery0.mp4').read_bytes()
    (root / 'archery' / 'empty.mp4').write_bytes(b'')
    (root / 'bowling' / 'sub').mkdir()
    write_video(root / 'bowling' / 'sub' / 'nested.mp4', 6, seed=7)
    (root / 'bowling' / 'cut.mp4').write_bytes(good[:len(good) // 2])
    (root / 'bowling' / 'notes.txt').write_text('not a video')
    (root / 'zebra' / '.hidden.mp4').write_bytes(b'')
    (root / '.cache').mkdir()  # a hidden folder is no class
    return root


def run(argv, capsys):
    code = TOOL.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def read_list(path):
    return [ln.rsplit(' ', 1) for ln in path.read_text().splitlines()]


def test_lists_classes_and_left_out_files(tree, tmp_path, capsys):
    code, out, _ = run([tree, '--out-dir', tmp_path], capsys)
    assert code == 0
    classes = (tmp_path / 'classes.txt').read_text().splitlines()
    assert classes == ['archery', 'bowling', 'zebra']
    listed = []
    for split in ('train', 'val'):
        for path, label in read_list(tmp_path / f'{split}.txt'):
            assert (tree / path).is_file()
            assert path.split('/')[0] == classes[int(label)]
            listed.append(path)
        # Every class in every split.
        labels = {int(lb) for _, lb in read_list(tmp_path / f'{split}.txt')}
        assert labels == {0, 1, 2}
    assert not (tmp_path / 'test.txt').exists()
    assert len(listed) == len(set(listed)) == 6 + 1 + 5 + 3
    assert 'bowling/sub/nested.mp4' in listed
    # The broken files are named with their reason and left out.
    assert re.search(r'archery/empty.mp4: the file is empty', out)
    assert re.search(r'bowling/cut.mp4: .*could not be decoded.*truncated',
                     out)
    assert not {'archery/empty.mp4', 'bowling/cut.mp4'} & set(listed)
    # Non-video and hidden files are ignored, not reported.
    assert 'notes.txt' not in out and '.hidden' not in out
    # The count per class and split (20 % of 7, 5, 3 rounded, at least 1).
    rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines()
            if ln.split() and ln.split()[0] in classes + ['total']}
    assert rows == {'archery': ['4', '1', '1'], 'bowling': ['6', '1', '1'],
                    'zebra': ['2', '1', '0'], 'total': ['12', '3', '2']}


def _split(tree, out, capsys, *extra):
    assert run([tree, '--out-dir', out, *extra], capsys)[0] == 0
    return {s: sorted(read_list(out / f'{s}.txt'))
            for s in ('train', 'val', 'test') if (out / f'{s}.txt').exists()}


def test_split_is_per_class_and_deterministic_per_seed(tmp_path, capsys):
    tree = make_tree(tmp_path / 'v', {'a': 20, 'b': 10}, frames=2)
    args = ('--val-fraction', '0.2', '--test-fraction', '0.1')
    first = _split(tree, tmp_path / 's0', capsys, *args, '--seed', '3')
    again = _split(tree, tmp_path / 's1', capsys, *args, '--seed', '3')
    assert first == again
    counts = {s: Counter(lb for _, lb in v) for s, v in first.items()}
    assert counts == {'train': {'0': 14, '1': 7}, 'val': {'0': 4, '1': 2},
                      'test': {'0': 2, '1': 1}}
    other = [_split(tree, tmp_path / f'o{s}', capsys, *args, '--seed', str(s))
             for s in (4, 5)]
    assert any(o['val'] != first['val'] for o in other)
    # A class's split does not depend on the other classes.
    (tmp_path / 'v' / 'b').rename(tmp_path / 'b_away')
    make_tree(tree, {'c': 4}, frames=2)
    alone = _split(tree, tmp_path / 's2', capsys, *args, '--seed', '3')
    assert ([p for p, _ in alone['val'] if p.startswith('a/')]
            == [p for p, _ in first['val'] if p.startswith('a/')])


def test_written_config(tree, tmp_path, capsys):
    ckpt = REPO / 'tests' / 'assets' / 'vivit_m2_synthetic_demo.pth'
    code, out, _ = run([tree, '--out-dir', tmp_path / 'o', '--config',
                        SYNTHETIC, '--load-from', ckpt,
                        '--test-fraction', '0.2'], capsys)
    assert code == 0, out
    text = (tmp_path / 'o' / 'finetune.py').read_text()
    assert text.startswith('# Fine-tuning config')
    cfg = Config.fromfile(str(tmp_path / 'o' / 'finetune.py'))
    base = Config.fromfile(str(SYNTHETIC))
    names = ['archery', 'bowling', 'zebra']
    assert cfg.label_names == names
    assert cfg.model.cls_head.num_classes == 3
    assert cfg.load_from == str(ckpt)
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.75
    assert (cfg.optim_wrapper.constructor
            == 'ViViTLayerDecayOptimWrapperConstructor')
    # The rest of the base is kept: model, optimizer, wrappers, pipelines.
    assert cfg.model.backbone.arch == base.model.backbone.arch
    assert cfg.optim_wrapper.optimizer == base.optim_wrapper.optimizer
    assert cfg.train_dataloader.dataset.type == 'ReproducibleDataset'
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        ds = loader.dataset.get('dataset', loader.dataset)
        assert ds.type == 'VideoDataset' and 'generate' not in ds
        assert ds.metainfo.classes == names
        assert ds.pipeline == base[f'{split}_pipeline']
        assert ds.ann_file == str(tmp_path / 'o' / f'{split}.txt')
        assert ds.get('test_mode', False) == (split != 'train')
        # MMAction2 reads the list: every file, its label, the classes.
        from mmaction.registry import DATASETS
        built = DATASETS.build(dict(ds, pipeline=[]))
        assert built.metainfo['classes'] == names
        for info in built.data_list:
            assert re.fullmatch(r'.*/(\w+)/\w+\.mp4', info['filename'])
            assert names[info['label']] in info['filename']
    # Never overwrite a config the user may have edited.
    (tmp_path / 'o' / 'finetune.py').write_text('# my edits\n')
    code, _, err = run([tree, '--out-dir', tmp_path / 'o', '--config',
                        SYNTHETIC], capsys)
    assert code == 1 and 'finetune.py exists' in err
    assert (tmp_path / 'o' / 'finetune.py').read_text() == '# my edits\n'


def test_without_test_split_the_test_loader_reads_val(tree, tmp_path, capsys):
    assert run([tree, '--out-dir', tmp_path, '--config', SYNTHETIC],
               capsys)[0] == 0
    cfg = Config.fromfile(str(tmp_path / 'finetune.py'))
    assert cfg.test_dataloader.dataset.ann_file == str(tmp_path / 'val.txt')
    assert 'load_from' not in cfg or cfg.load_from is None


@pytest.mark.parametrize('layout, match', [
    ({}, 'has no class folders'),
    ({'a': 3, 'b': 0}, r"without readable videos: \['b'\]"),
    ({'a': 3, 'b': 1}, "Class 'b' has 1 readable video.*at least 2"),
    ({'a': 3, 'b c': 3}, 'Class folder names with whitespace'),
])
def test_bad_trees_stop_with_a_clear_error(tmp_path, capsys, layout, match):
    root = tmp_path / 'v'
    root.mkdir()
    write_video(root / 'loose.mp4', 2)  # no class folder: not a class
    make_tree(root, layout, frames=2)
    code, _, err = run([root, '--out-dir', tmp_path / 'o'], capsys)
    assert code == 1 and re.search(match, err), err
    assert not (tmp_path / 'o').exists()  # nothing half-written


def test_class_of_broken_files_is_empty(tmp_path, capsys):
    root = make_tree(tmp_path / 'v', {'a': 3, 'b': 0}, frames=2)
    (root / 'b' / 'x.mp4').write_bytes(b'\0' * 100)
    code, out, err = run([root, '--out-dir', tmp_path / 'o'], capsys)
    assert code == 1 and 'b/x.mp4: the file (100 bytes)' in out
    assert "without readable videos: ['b']" in err


@pytest.mark.parametrize('argv, match', [
    (['--val-fraction', '0'], 'must be > 0'),
    (['--val-fraction', '0.6', '--test-fraction', '0.4'], 'must be < 1'),
    (['--val-fraction', '1.5'], r'must be in \[0, 1\)'),
    (['--load-from', 'x.pth'], 'pass --config'),
])
def test_bad_arguments(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as e:
        TOOL.parse_args([str(tmp_path), '--out-dir', str(tmp_path), *argv])
    assert e.value.code == 2
    assert re.search(match, capsys.readouterr().err)


def test_bad_base_config(tree, tmp_path, capsys):
    bad = tmp_path / 'backbone_only.py'
    bad.write_text("model = dict(type='Recognizer3D')\n")
    code, _, err = run([tree, '--out-dir', tmp_path / 'o', '--config', bad],
                       capsys)
    assert code == 1 and 'model.cls_head.num_classes' in err


def test_written_config_from_the_finetune_recipe(tree, tmp_path, capsys):
    """A child of configs/vivit_m2_finetune.py (with mixup switched on in a
    base of its own): the recipe's frozen stages, layer decay and
    regularisers are kept, every class count follows the lists."""
    recipe = REPO / 'configs' / 'vivit_m2_finetune.py'
    base = tmp_path / 'my_recipe.py'
    base.write_text(
        f'_base_ = {str(recipe)!r}\n'
        'model = dict(backbone=dict(frozen_stages=12), data_preprocessor='
        "dict(blending=dict(_delete_=True, type='MixupBlending', "
        'num_classes=10, '
        'alpha=0.2)))\n')
    code, out, _ = run([tree, '--out-dir', tmp_path / 'o', '--config', base],
                       capsys)
    assert code == 0, out
    cfg = Config.fromfile(str(tmp_path / 'o' / 'finetune.py'))
    ref = Config.fromfile(str(recipe))
    assert cfg.model.cls_head.num_classes == 3
    assert cfg.model.data_preprocessor.blending.num_classes == 3
    assert cfg.model.data_preprocessor.blending.alpha == 0.2
    assert cfg.model.backbone.frozen_stages == 12
    assert cfg.model.backbone.drop_path_rate == ref.model.backbone \
        .drop_path_rate
    assert cfg.model.cls_head.label_smooth_eps == ref.model.cls_head \
        .label_smooth_eps
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate \
        == ref.layer_decay_rate
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys \
        == ref.optim_wrapper.paramwise_cfg.custom_keys
    assert cfg.load_from == ref.load_from  # not given: the base's, noted
    assert f'load_from: the base config\'s, {ref.load_from!r}' in (
        tmp_path / 'o' / 'finetune.py').read_text()
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        ds = loader.dataset.get('dataset', loader.dataset)
        assert ds.type == 'VideoDataset' and ds.data_root == str(tree)
        assert ds.pipeline == ref[f'{split}_pipeline']
    # It builds (narrow and at 32 px, to be cheap): a 3-way head, the 12
    # spatial blocks frozen, the temporal ones trained.
    cfg.model.backbone.update(img_size=32, arch=dict(
        embed_dims=32, num_layers=12, num_heads=2, feedforward_channels=64))
    cfg.model.cls_head.in_channels = 32
    model = build_model(cfg.model)
    assert model.cls_head.fc_cls.out_features == 3
    assert not any(p.requires_grad for p in model.backbone.layers.parameters())
    assert all(p.requires_grad
               for p in model.backbone.temporal_layers.parameters())


def test_other_codecs_and_a_cut_webm(tmp_path, capsys):
    """H.264 (with B-frames) and VP9 videos as users have them are listed;
    a WebM cut in half still opens with fewer frames, and is reported as
    truncated from the duration the file states."""
    pytest.importorskip('av')
    root = make_tree(tmp_path / 'v', {'a': 2, 'b': 2}, frames=2)
    # Encoded in a fresh process: once decord's own FFmpeg is loaded,
    # PyAV's libvpx encoder refuses to open in the same process.
    subprocess.run([sys.executable, '-c', (
        'import sys; sys.path.append(sys.argv[3]); '
        'from vivit_bench.videos import VideoSpec, write_video as w; '
        "w(sys.argv[1], VideoSpec(64, 48, 8, 2, 'libx264', 8)); "
        "w(sys.argv[2], VideoSpec(64, 48, 8, 2, 'libvpx-vp9', 8))"),
        str(root / 'a' / 'h264.mp4'), str(root / 'b' / 'vp9.webm'),
        str(REPO / 'tools' / 'analysis_tools')],
        check=True, cwd=str(REPO), timeout=120)
    webm = root / 'b' / 'vp9.webm'
    data = webm.read_bytes()
    (root / 'b' / 'cut.webm').write_bytes(data[:len(data) // 2])
    code, out, _ = run([root, '--out-dir', tmp_path / 'o'], capsys)
    assert code == 0
    listed = [p for s in ('train', 'val')
              for p, _ in read_list(tmp_path / 'o' / f'{s}.txt')]
    assert {'a/h264.mp4', 'b/vp9.webm'} <= set(listed)
    assert 'b/cut.webm' not in listed
    assert re.search(r'b/cut.webm: its \d+ frames end at [\d.]+ s, but the '
                     r'file says the video lasts 2.00 s: it is probably '
                     r'truncated', out)


# Real videos no one here made: MMAction2's own demo clips (Apache-2.0), in
# the MMAction2 1.2.0 source tarball that CI installs from (shared/vendor).
REAL = {'demo/demo.mp4': 'play', 'demo/demo_skeleton.mp4': 'play',
        'demo/demo_spatiotemporal_det.mp4': 'scene',
        'demo/test_video_structuralize.mp4': 'scene',
        'tools/data/skeleton/S001C001P001R001A001_rgb.avi': 'scene'}
TARBALL = REPO.parent / 'shared' / 'vendor' / 'mmaction2-1.2.0-src.tar.gz'


def test_real_videos_with_broken_files_mixed_in(tmp_path, capsys):
    """MMAction2's demo videos (340x256 to 1920x1080, H.264 mp4 and an avi,
    57 to 300 frames) are listed and read through the written config's
    pipeline; a cut copy and an empty file beside them are named and left
    out."""
    import tarfile
    if not TARBALL.is_file():
        pytest.skip(f'{TARBALL} (MMAction2 source tarball) is not here')
    root = tmp_path / 'videos'
    with tarfile.open(TARBALL) as tar:
        for member, label in REAL.items():
            f = tar.extractfile(f'mmaction2-1.2.0/{member}')
            (root / label).mkdir(parents=True, exist_ok=True)
            (root / label / member.rsplit('/', 1)[1]).write_bytes(f.read())
    demo = (root / 'play' / 'demo.mp4').read_bytes()
    (root / 'play' / 'cut.mp4').write_bytes(demo[:len(demo) // 3])
    (root / 'scene' / 'empty.mp4').write_bytes(b'')
    out_dir = tmp_path / 'lists'
    code, out, _ = run([root, '--out-dir', out_dir, '--val-fraction', '0.3',
                        '--config', SYNTHETIC], capsys)
    assert code == 0, out
    listed = {p: int(label) for s in ('train', 'val')
              for p, label in read_list(out_dir / f'{s}.txt')}
    classes = (out_dir / 'classes.txt').read_text().split()
    assert classes == ['play', 'scene']
    assert {p: classes[i] for p, i in listed.items()} == {
        f'{label}/{m.rsplit("/", 1)[1]}': label for m, label in REAL.items()}
    assert re.search(r'play/cut.mp4: .*', out) and \
        re.search(r'scene/empty.mp4: .*empty', out)
    # the written config's training pipeline reads a real video
    from mmaction.registry import DATASETS
    from mmengine.registry import init_default_scope

    from tests.tools.helpers import inner_dataset
    init_default_scope('mmaction')
    cfg = Config.fromfile(str(out_dir / 'finetune.py'))
    dataset = DATASETS.build(inner_dataset(cfg.train_dataloader))
    item = dataset[0]
    assert item['inputs'].shape[0] == 1 and item['inputs'].dim() == 5
    assert int(item['data_samples'].metainfo.get(
        'num_classes', len(classes))) == len(classes)
