"""Pre-flight reports every problem at once, each with its fix: missing
lists and video folders, the image checkpoint, load_from, the test tool's
checkpoint and the optional packages a config's transforms need
(tools/vivit_cli/preflight.py check_all)."""
import sys

import pytest

from tests.conftest import REPO
from tests.tools.helpers import run
from tests.tools.test_preflight_data import _k400
from vivit_cli.preflight import check_all, raise_problems


def test_data_and_image_checkpoint_together(tmp_path):
    cfg = _k400(tmp_path)
    cfg.custom_hooks[0].checkpoint = str(tmp_path / 'vit.pth')
    with pytest.raises(FileNotFoundError) as e:
        check_all(cfg, 'train')
    text = str(e.value)
    lines = text.splitlines()
    assert lines[0] == ('3 problems, found before anything was built or '
                        'run:')
    assert lines[1].startswith('1. train_dataloader.dataset: ')
    assert lines[2].startswith('2. val_dataloader.dataset: ')
    assert lines[3].startswith("3. custom_hooks[0].checkpoint='")
    assert 'build_file_list.py' in lines[1]  # the fix, written once
    assert lines[2].endswith('do not exist. (fix: as for 1.)')
    assert 'huggingface-cli download' in lines[3]


def test_load_from_and_data_together(tmp_path):
    cfg = _k400(tmp_path)
    cfg.load_from = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError) as e:
        check_all(cfg, 'train')
    text = str(e.value)
    assert text.startswith('3 problems') and "load_from='" in text
    assert 'nope.pth' in text and 'custom_hooks' not in text  # load_from wins


def test_test_tool_checkpoint_and_data_together(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        check_all(_k400(tmp_path), 'test', checkpoint=str(tmp_path / 'c.pth'))
    assert str(e.value).startswith('2 problems')
    assert "CHECKPOINT='" in str(e.value)


def test_missing_package_of_a_transform(tmp_path, monkeypatch):
    ann = tmp_path / 'list.txt'
    ann.write_text('a.mp4 0\n')
    cfg = _k400(tmp_path, ann=ann)  # the video folder is missing
    cfg.test_pipeline[0]['transforms'][0]['type'] = 'PyAVIndexInit'
    monkeypatch.setitem(sys.modules, 'av', None)
    with pytest.raises(ValueError) as e:  # mixed kinds: ValueError
        check_all(cfg, 'test')
    text = str(e.value)
    assert text.startswith('2 problems')
    assert "2. test_pipeline[0].transforms[0] (PyAVIndexInit) needs av: " \
        "pip install -e '.[pyav]' (or pip install av)." in text


def test_one_problem_is_raised_as_it_is():
    e = FileNotFoundError('x')
    with pytest.raises(FileNotFoundError, match='^x$'):
        raise_problems([e])
    raise_problems([])  # nothing to report


def test_train_tool_names_data_and_image_checkpoint(tmp_path):
    proc = run([sys.executable, str(REPO / 'tools' / 'train.py'),
                str(REPO / 'configs' / 'vivit_m2_k400.py'), '--work-dir',
                str(tmp_path / 'wd')], cwd=tmp_path)
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert 'error: 3 problems' in proc.stderr
    assert 'kinetics400_train_list_videos.txt' in proc.stderr
    assert 'custom_hooks[0].checkpoint' in proc.stderr
