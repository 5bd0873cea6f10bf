"""The first errors a new user meets: the Kinetics/SSv2 configs' data and
image checkpoint are checked before the Runner starts and before any config
dump, with messages that say what is missing and what to do."""
import sys

import pytest
from mmengine.config import Config

from tests.conftest import REPO
from tests.tools.helpers import inner_dataset, run
from vivit_cli.preflight import check_checkpoints, check_data

K400 = REPO / 'configs' / 'vivit_m2_k400.py'


def _k400(tmp_path, **paths):
    cfg = Config.fromfile(str(K400))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        inner_dataset(cfg[key]).update(
            ann_file=str(paths.get('ann', tmp_path / 'none.txt')),
            data_prefix=dict(video=str(paths.get('videos',
                                                 tmp_path / 'none'))))
    cfg.work_dir = str(tmp_path / 'wd')
    return cfg


def test_missing_list_and_videos_are_named_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        check_data(_k400(tmp_path), 'train')
    text = str(e.value)
    assert str(tmp_path / 'none.txt') in text and str(tmp_path / 'none') \
        in text
    assert 'train_dataloader' in text
    assert '"relative/path.mp4 label"' in text
    assert 'mmaction2/tree/main/tools/data/kinetics' in text
    assert 'build_file_list.py' in text


def test_missing_video_folder_alone(tmp_path):
    ann = tmp_path / 'list.txt'
    ann.write_text('a/b.mp4 3\n')
    with pytest.raises(FileNotFoundError, match=r'the video folder .*none'
                       r'.* does not exist'):
        check_data(_k400(tmp_path, ann=ann), 'test')


@pytest.mark.parametrize('text, why', [
    ('', 'empty'), ('a/b.mp4\n', 'is not "relative/path.mp4 label"'),
    ('a/b.mp4 cat\n', 'is not "relative/path.mp4 label"')])
def test_list_layout_is_checked(tmp_path, text, why):
    ann = tmp_path / 'list.txt'
    ann.write_text(text)
    (tmp_path / 'videos').mkdir()
    with pytest.raises(ValueError, match=why):
        check_data(_k400(tmp_path, ann=ann, videos=tmp_path / 'videos'),
                   'test')


def test_good_lists_pass(tmp_path):
    ann = tmp_path / 'list.txt'
    ann.write_text('a/b.mp4 3\nc.mp4 0\n')
    (tmp_path / 'videos').mkdir()
    cfg = _k400(tmp_path, ann=ann, videos=tmp_path / 'videos')
    check_data(cfg, 'train')
    check_data(cfg, 'test')


def test_missing_image_checkpoint_says_what_to_get(tmp_path):
    cfg = _k400(tmp_path)
    cfg.custom_hooks[0].checkpoint = str(tmp_path / 'vit.pth')
    with pytest.raises(FileNotFoundError) as e:
        check_checkpoints(cfg)
    text = str(e.value)
    assert 'custom_hooks[0].checkpoint' in text and 'vit.pth' in text
    for model in ('ViT-B_16.npz', 'timm/vit_base_patch16_224.orig_in21k',
                  'vit-base-p16_in21k-pre_3rdparty_in1k-384px'):
        assert model in text
    assert 'huggingface-cli download' in text and 'wget ' in text
    assert "tubelet_init='central_frame'" in text
    # ViViT-L names the large models.
    cfg.model.backbone.arch = 'l'
    with pytest.raises(FileNotFoundError, match='vit_large_patch16_224'):
        check_checkpoints(cfg)


def test_train_tool_stops_before_the_runner_and_its_config_dump(tmp_path):
    proc = run([sys.executable, str(REPO / 'tools' / 'train.py'), str(K400),
                '--work-dir', str(tmp_path / 'wd')], cwd=tmp_path)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert 'data/kinetics400/kinetics400_train_list_videos.txt' in out
    assert 'data/kinetics400/videos_train' in out
    assert 'tools/data/kinetics' in out
    assert 'Config:' not in out  # no Runner, no dump
    assert len(out.splitlines()) < 40
