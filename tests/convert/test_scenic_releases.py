"""Released official checkpoints the converter cannot take yet are refused
by name (docs/model_zoo.md lists them)."""
import numpy as np
import pytest

from tests.convert.test_scenic import D, flat, make_tree
from vivit_mm.convert.scenic import scenic_to_vivit


def _with_outputs(n):
    tree = make_tree(2)
    tree['output_projection'] = {
        'kernel': np.random.default_rng(0).standard_normal(
            (D, n)).astype(np.float32),
        'bias': np.zeros(n, np.float32)}
    return flat(tree)


def test_epic_kitchens_multi_head_release_is_refused_by_name():
    with pytest.raises(ValueError, match=r'Epic-Kitchens.*\[300, 97\] '
                       r'\(noun, verb\).*not supported yet.*--single-head'):
        scenic_to_vivit(_with_outputs(397))


def test_single_head_overrides_the_refusal():
    converted = scenic_to_vivit(_with_outputs(397), single_head=True)
    assert converted.num_classes == 397
    assert scenic_to_vivit(_with_outputs(396)).num_classes == 396
