"""tools/analysis_tools/init_study.py: image pre-training, inflation and
fine-tuning on a few synthetic videos, vs. random initialisation.

The full study (docs/finetune.md) takes about 3 CPU minutes; here a
reduced run (2 seeds, 2 starts, a shorter image pre-training, 20 held-out
videos per class; about 50 s of one core) checks what held on every seed of
the full one: the image start beats the random one by a wide margin."""
import json

import pytest

from tests.tools.helpers import load_tool

STUDY = load_tool('tools/analysis_tools/init_study.py')


def test_image_start_beats_scratch_on_every_seed(tmp_path, capsys):
    out = tmp_path / 'study.json'
    assert STUDY.main([
        '--seeds', '2', '--inits', 'scratch,uniform', '--pretrain-epochs',
        '8', '--test-per-class', '20',
        '--json', str(out)]) == 0
    result = json.loads(out.read_text())
    # The image task was learnt (regression of the object's log radius).
    assert result['image_r2'] > 0.2
    scratch, image = result['results']['scratch'], result['results']['uniform']
    assert len(scratch) == len(image) == 2
    for s, i in zip(scratch, image):
        assert i >= s + 0.15 and i >= 0.6  # chance is 0.25
    text = capsys.readouterr().out
    assert '| scratch |' in text and '| uniform |' in text


def test_summary_and_table():
    summary = STUDY.summarise({'a': [0.5, 0.7], 'b': [0.25]})
    assert summary['a'][0] == pytest.approx(0.6)
    assert summary['a'][1] == pytest.approx(0.1414, abs=1e-4)
    assert summary['b'][1] == 0.0
    assert '| a | 0.600 ± 0.141 | 0.500, 0.700 |' in STUDY.table(summary, 2)


@pytest.mark.parametrize('argv, match', [
    (['--inits', 'scratch,imagenet'], 'unknown'),
    (['--seeds', '0'], '--seeds must be >= 1'),
])
def test_bad_arguments(argv, match, capsys):
    with pytest.raises(SystemExit):
        STUDY.parse_args(argv)
    assert match in capsys.readouterr().err
