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
