"""tools/analysis_tools/benchmark_pipeline.py: the config's own pipeline
timed transform by transform, the workers arithmetic, the PyAV decoder in
place of decord's, and clear errors for bad input."""
import importlib.util
import math

import numpy as np
import pytest
from mmengine.config import Config

from tests.conftest import REPO
from tests.tools.helpers import K400_M2
from tests.tools.test_fast_help import HEAVY, _parse
from vivit_bench import pipeline as pl

TOOL = 'tools/analysis_tools/benchmark_pipeline.py'
videos = pytest.importorskip('vivit_bench.videos')
pytest.importorskip('av')


def load_tool():
    spec = importlib.util.spec_from_file_location('bench_pipe', REPO / TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture(scope='module')
def video_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench_videos')
    for k, (w, h) in enumerate([(64, 48), (40, 56)]):
        spec = videos.VideoSpec(w, h, 12, 3, 'libx264', gop=12, seed=k)
        videos.write_video(root / f'v{k}.mp4', spec)
    (root / 'notes.txt').write_text('not a video')
    return root


@pytest.mark.parametrize('argv, code', [(['--help'], 0),
                                        ([str(K400_M2)], None),
                                        (['--no-such-option'], 2)])
def test_parses_without_the_heavy_stack(argv, code):
    result = _parse(TOOL, argv)
    assert result['code'] == code
    assert not [m for m in HEAVY if m in result['modules']]


@pytest.mark.parametrize('argv, message', [
    (['--split', 'trian'], "invalid choice: 'trian'"),
    (['--videos', '/no/such/dir'], 'no such folder'),
    (['--utilisation', '1.5'], 'utilisation'),
    (['--num-clips', '0'], 'must be > 0'),
    (['--num-videos', '7'], 'at most'),
    (['--kind', 'ssv2', '--num-videos', '5'], 'at most'),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        load_tool().parse_args([str(K400_M2)] + argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_config_is_named(capsys):
    with pytest.raises(SystemExit):
        load_tool().parse_args(['/no/such/config.py'])
    assert 'no such config file' in capsys.readouterr().err


def test_empty_video_folder_is_an_error(tmp_path, video_dir):
    with pytest.raises(FileNotFoundError, match='no video files'):
        videos.list_videos(tmp_path)
    assert [p.name for p in videos.list_videos(video_dir)] == ['v0.mp4',
                                                               'v1.mp4']
    with pytest.raises(ValueError, match='unknown split'):
        pl.pipeline_of(Config.fromfile(str(K400_M2)), 'training')
    with pytest.raises(ValueError, match='unknown video kind'):
        videos.generated_videos(tmp_path, 'ucf')


def test_guarded_transforms_are_timed_one_by_one():
    cfg = Config.fromfile(str(K400_M2))
    names = [t['type'] for t in pl.flatten_pipeline(cfg.test_pipeline)]
    assert names == ['DecordInit', 'SampleFrames', 'DecordDecode', 'Resize',
                     'ThreeCrop', 'FormatShape', 'PackActionInputs']
    swapped = load_tool().swap_decoder(cfg.test_pipeline, 'pyav-index')
    names = [t['type'] for t in pl.flatten_pipeline(swapped)]
    assert names[:3] == ['PyAVIndexInit', 'SampleFrames', 'PyAVIndexDecode']


def test_workers_arithmetic():
    # 100 GMACs per view, 100 TFLOP/s at 50 %: 250 views/s at test time,
    # a third of that in training (forward + backward).
    test = pl.model_rate(12, 'test', macs=10**11, accelerator_tflops=100,
                         utilisation=0.5)
    assert test['views_per_s'] == pytest.approx(250)
    assert test['samples_per_s'] == pytest.approx(250 / 12)
    train = pl.model_rate(1, 'train', macs=10**11, accelerator_tflops=100,
                          utilisation=0.5)
    assert train['views_per_s'] == pytest.approx(250 / 3)
    assert 'estimate' in train['how']
    given = pl.model_rate(1, 'train', model_clips_per_s=40)
    assert given['samples_per_s'] == 40 and 'measured' in given['how']
    assert pl.workers_needed(40, 3.0) == 14
    assert pl.workers_needed(0.5, 3.0) == 1
    with pytest.raises(ValueError):
        pl.model_rate(1, 'train', model_clips_per_s=-1)


def test_end_to_end_on_a_video_folder(video_dir, tmp_path):
    rep = load_tool().main([
        str(K400_M2), '--split', 'test', '--videos', str(video_dir),
        '--num-clips', '2', '--model-clips-per-s', '30',
        '--out-dir', str(tmp_path)])
    s = rep.data['pipeline']
    names = [r[0] for r in s['rows']]
    assert names == ['DecordInit', 'SampleFrames', 'DecordDecode', 'Resize',
                     'ThreeCrop', 'FormatShape', 'PackActionInputs']
    # 4 clips x 3 crops of 32 frames at 224.
    assert s['views'] == 12 and s['shape'] == (12, 3, 32, 224, 224)
    assert sum(r[1] for r in s['rows']) <= s['ms_per_sample'] * 1.001
    assert sum(r[3] for r in s['rows']) <= s['cpu_ms_per_sample'] * 1.001
    assert 0 < s['cpu_samples_per_s']
    assert rep.data['workers'] == math.ceil(
        (30 / 12) / s['samples_per_s'])
    md = (tmp_path / 'pipeline.md').read_text()
    assert '| DecordDecode |' in md and 'Workers needed' in md


def test_training_pipeline_estimate_from_flops(video_dir):
    rep = load_tool().main([str(K400_M2), '--videos', str(video_dir),
                            '--num-clips', '1', '--decoder', 'pyav-index'])
    s = rep.data['pipeline']
    assert [r[0] for r in s['rows']][:3] == ['PyAVIndexInit', 'SampleFrames',
                                             'PyAVIndexDecode']
    assert s['shape'] == (1, 3, 32, 224, 224)
    # Model 2's 284.4 paper GFLOPs (MACs) per view, counted here.
    assert rep.data['macs'] / 1e9 == pytest.approx(284.4, rel=0.01)
    assert 'estimate' in rep.data['model']['how']
    expected = 312e12 * 0.4 / (2 * rep.data['macs'] * 3)
    assert rep.data['model']['views_per_s'] == pytest.approx(expected)


def test_generated_videos_match_their_spec_and_are_cached(tmp_path,
                                                         monkeypatch):
    spec = videos.VideoSpec(32, 32, 12, 1, 'libx264', gop=6)
    monkeypatch.setitem(videos.KINDS, 'tiny', (spec, ))
    [path] = videos.generated_videos(tmp_path, 'tiny', 1)
    row = videos.describe([path])[0]
    assert (row['width'], row['height'], row['codec']) == (32, 32, 'h264')
    stamp = path.stat().st_mtime_ns
    assert videos.generated_videos(tmp_path, 'tiny', 1) == [path]
    assert path.stat().st_mtime_ns == stamp  # reused, not re-encoded
    frames = list(videos.frames(spec))
    assert len(frames) == 12 and frames[0].shape == (32, 32, 3)
    assert not np.array_equal(frames[0], frames[1])  # it moves


def test_macs_of_a_config_with_mixup():
    # The SSv2 config's MixupBlending cannot be built on the meta device;
    # it adds no MACs, so the count leaves it out (the config is unchanged).
    cfg = Config.fromfile(str(REPO / 'configs' / 'vivit_m2_ssv2.py'))
    macs, shape = pl.config_macs(cfg)
    assert shape == (1, 3, 32, 224, 224)
    assert macs / 1e9 == pytest.approx(284.4, rel=0.01)
    assert cfg.model.data_preprocessor.blending.type == 'MixupBlending'


def test_paper_models_table(video_dir):
    rep = load_tool().main([str(K400_M2), '--split', 'val', '--videos',
                            str(video_dir), '--num-clips', '1',
                            '--paper-models'])
    rate = rep.data['pipeline']['samples_per_s']
    rows = rep.data['paper_models']
    assert [r[1] for r in rows.values()] == ['451.5', '283.3', '371.1',
                                             '276.2']
    # Model 2 with the paper's 17.4 ms per view on a TPU-v3.
    assert rows[2][-1] == math.ceil(1e3 / 17.4 / rate)
