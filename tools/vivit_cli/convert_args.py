"""Command-line options the converters share, and writing label map files
(reading them: ``vivit_mm.deploy.loading.read_label_map``)."""
from typing import Sequence


def add_test_config_args(parser) -> None:
    """The test-protocol options of the config written beside the
    weights."""
    g = parser.add_argument_group('test config written beside the weights')
    g.add_argument('--num-clips', type=int, default=4,
                   help='temporal views (default: 4)')
    g.add_argument('--frame-interval', type=int, default=2,
                   help='frame stride of a clip (default: 2; 1 for SSv2/EK '
                   'as scenic trained them)')
    g.add_argument('--spatial-crops', type=int, choices=(1, 3), default=3,
                   help='3 = ThreeCrop, 1 = CenterCrop (default: 3)')
    g.add_argument('--test-scale', type=int, default=None,
                   help='short side before cropping (default: the crop '
                   'size with 3 crops, crop * 256 / 224 with 1)')
    g.add_argument('--ann-file', default=None,
                   help='test annotation list for tools/test.py (default: '
                   "MMAction2's Kinetics-400 validation list)")
    g.add_argument('--data-prefix', default=None,
                   help='test video folder for tools/test.py (default: '
                   "MMAction2's Kinetics-400 validation videos)")


def test_config_kwargs(args) -> dict:
    """``recognizer_config`` keyword arguments from those options (the
    data paths only when given: the library's defaults apply otherwise)."""
    kwargs = dict(num_clips=args.num_clips,
                  frame_interval=args.frame_interval,
                  three_crop=args.spatial_crops == 3,
                  test_scale=args.test_scale)
    for key in ('ann_file', 'data_prefix'):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    return kwargs


def write_label_map(names: Sequence[str], path: str) -> None:
    import os
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(f'{n}\n' for n in names))
