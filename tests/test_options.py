"""Every user-facing option is checked when it is built: the error names
the option, the value and what is allowed (messages of
:mod:`vivit_mm.utils.checks`)."""
import pytest
from mmaction.registry import DATASETS, HOOKS, MODELS, TRANSFORMS

# (registry, config, exception, the message must contain) -----------------
INVALID = [
    (HOOKS, dict(type='NonFiniteLossHook', action='ignore'), ValueError,
     "action must be one of ('stop', 'skip'), got 'ignore'"),
    (HOOKS, dict(type='NonFiniteLossHook', max_consecutive=0), ValueError,
     'max_consecutive must be a positive int, got 0'),
    (HOOKS, dict(type='NonFiniteLossHook', max_consecutive=True), ValueError,
     'max_consecutive must be a positive int, got True'),
    (HOOKS, dict(type='SkippedVideosHook', max_files=-1), ValueError,
     'max_files must be an int >= 0, got -1'),
    (HOOKS, dict(type='VideoVisualizationHook', interval=0), ValueError,
     'interval must be a positive int, got 0'),
    (HOOKS, dict(type='VideoVisualizationHook', max_views=1.5), ValueError,
     'max_views must be a positive int, got 1.5'),
    (DATASETS, dict(type='SkipBadVideosDataset', max_bad_ratio=1.5,
                    dataset=[]), ValueError,
     'max_bad_ratio must be a number in [0, 1], got 1.5'),
    (DATASETS, dict(type='SkipBadVideosDataset', max_bad_ratio='10%',
                    dataset=[]), ValueError, "got '10%'"),
    (DATASETS, dict(type='SkipBadVideosDataset', dataset=42), TypeError,
     'dataset must be a data set or its config dict, got int'),
    (DATASETS, dict(type='ReproducibleDataset', dataset=42), TypeError,
     'dataset must be a data set or its config dict, got int'),
    (TRANSFORMS, dict(type='CheckVideoLength', min_frames=0), ValueError,
     'min_frames must be a positive int, got 0'),
    (TRANSFORMS, dict(type='CheckVideoLength', min_frames=2.5), ValueError,
     'got 2.5'),
    (TRANSFORMS, dict(type='VideoReadGuard', transforms=[]), ValueError,
     'transforms must be a non-empty list of transforms, got []'),
    (TRANSFORMS, dict(type='ScaleJitter', prob='high'), ValueError,
     "prob must be a number in [0, 1], got 'high'"),
    (TRANSFORMS, dict(type='ScaleJitter', scale_range=(0.9, 'x')),
     ValueError, "scale_range must be (low, high) with 0 < low <= high"),
    (TRANSFORMS, dict(type='ScaleJitter', scale_range=(0, 1)),
     ValueError, "scale_range must be (low, high) with 0 < low <= high"),
    (TRANSFORMS, dict(type='VideoColorJitter', prob=None), ValueError,
     'prob must be a number in [0, 1], got None'),
    (TRANSFORMS, dict(type='VideoColorJitter', brightness='x'), ValueError,
     "brightness must be a number in [0, 1], got 'x'"),
    (TRANSFORMS, dict(type='VideoColorJitter', hue=None), ValueError,
     'hue must be a number in [0, 0.5], got None'),
    (TRANSFORMS, dict(type='VideoColorJitter', saturation=(0.6, 'a')),
     ValueError, "saturation must be (low, high)"),
    (MODELS, dict(type='ViViTHead', num_classes=0, in_channels=32),
     ValueError, 'num_classes must be a positive int, got 0'),
    (MODELS, dict(type='ViViTHead', num_classes=4, in_channels=None),
     ValueError, 'in_channels must be a positive int, got None'),
    # BaseHead itself only complains at the first validation.
    (MODELS, dict(type='ViViTHead', num_classes=4, in_channels=32,
                  average_clips='mean'), ValueError,
     "average_clips must be 'score', 'prob' or None, got 'mean'"),
]


@pytest.mark.parametrize('registry, cfg, exc, message', INVALID,
                         ids=[f"{c['type']}-{i}"
                              for i, (_, c, _, _) in enumerate(INVALID)])
def test_invalid_option_is_rejected_when_built(registry, cfg, exc, message):
    with pytest.raises(exc) as info:
        registry.build(cfg)
    assert message in str(info.value)
