"""What the docs claim, checked where a claim has one home."""
import re

import yaml

from tests.conftest import REPO

DOCS = [REPO / 'README.md'] + sorted((REPO / 'docs').glob('*.md'))


def _text(path):
    return path.read_text(encoding='utf-8')


def test_no_doc_says_load_from_does_not_resize():
    """Backbones resize a checkpoint's position tables when it is loaded
    (tests/models/test_pos_embed.py)."""
    for path in DOCS:
        for line in _text(path).splitlines():
            if 'load_from' in line:
                assert not re.search(r'(does|do|is|are) not (re)?siz', line), \
                    f'{path.name}: {line}'


def test_every_markdown_link_to_a_doc_exists():
    for path in DOCS:
        for target in re.findall(r'\]\(((?:docs/)?[\w.-]+\.md)(?:#[\w-]*)?\)',
                                 _text(path)):
            base = REPO if target.startswith('docs/') or path.parent == REPO \
                else path.parent
            assert (base / target).is_file(), f'{path.name} -> {target}'


def test_metafile_models_name_existing_configs():
    index = yaml.safe_load(_text(REPO / 'model-index.yml'))
    for meta in index['Import']:
        models = yaml.safe_load(_text(REPO / meta))['Models']
        assert models
        for model in models:
            assert (REPO / model['Config']).is_file(), model['Name']
            assert model['Results'][0]['Metrics']['Top 1 Accuracy'] > 0


def test_readme_inference_snippet_runs(tmp_path):
    """The README's inference snippet, as written, on the installed
    MMAction2 (1.1 or 1.2): only the config, checkpoint and video names are
    swapped for the demo config, its committed weights and a made video."""
    from tests.datasets.conftest import write_video
    block = [b for b in re.findall(r'```python\n(.*?)```', _text(
        REPO / 'README.md'), re.S) if 'inference_recognizer(' in b]
    assert len(block) == 1
    video = tmp_path / 'clip.mp4'
    write_video(video, 40, width=64, height=48)
    code = (block[0]
            .replace("'configs/vivit_m2_k400.py'",
                     repr(str(REPO / 'configs' / 'vivit_m2_synthetic.py')))
            .replace("'CKPT.pth'", repr(str(
                REPO / 'tests' / 'assets' / 'vivit_m2_synthetic_demo.pth')))
            .replace("'video.mp4'", repr(str(video))))
    assert code.count(str(REPO)) == 2 and str(video) in code
    namespace = {}
    exec(compile(code, 'README.md', 'exec'), namespace)
    scores = namespace['scores']
    assert scores.shape == (4, ) and bool(scores.isfinite().all())
