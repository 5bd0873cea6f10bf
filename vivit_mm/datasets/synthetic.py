"""Synthetic motion videos: an embedded data set that only motion can solve.

Every video shows one object (random shape, colour and place) over a random
background with static distractor shapes and noise. Along the video the
object passes through ``T`` sizes, from small to large (geometric steps; the
range is random), while it also spins slowly in a random direction, a motion
that carries no information about the class. The four classes differ only in
the ORDER in which the object takes these ``T`` states:

====== ===================== ================================================
label  name                  order of the states 0 (smallest) .. T-1
====== ===================== ================================================
0      ``grow``              0, 1, ..., T-1
1      ``shrink``            T-1, ..., 1, 0 (time reversal of 0)
2      ``grow_then_shrink``  0, 2, ..., T-2, then T-1, T-3, ..., 1
3      ``shrink_then_grow``  mirror image of 2 (state ``k -> T-1-k``)
====== ===================== ================================================

Frame ``t`` of a video is the rendering of state ``order[t]``; the per-frame
noise belongs to the state, not to the time step. So for one scene the four
classes show exactly the same SET of frames, only in different orders: a
single frame, and even the bag of all frames, carries no information about
the class. A model that averages per-frame features (ViViT Model 2 with
``num_temporal_layers=0``, the paper's average-pool baseline) therefore
stays at chance (25 %), while a model that relates frames across time can
solve the task.

Why sizes and not positions: a ViT trained from scratch sees a patch's
content directly, but where a patch lies only through its position
embedding, which starts near zero; classes told apart by the direction of
travel took far longer to learn than a few CPU minutes allow.

The files are real mp4 videos (MPEG-4 part 2, ``mp4v``, written by OpenCV,
read back by decord) with MMAction2 ``VideoDataset`` annotation lists
(``<relative path> <label>`` per line). Everything is a deterministic
function of the seed; each video has its own random stream, so changing the
size of one split does not change the videos of another.

Command line::

    python -m vivit_mm.datasets.synthetic --out data/synthetic_motion
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np

CLASSES = ('grow', 'shrink', 'grow_then_shrink', 'shrink_then_grow')
SPLITS = ('train', 'val', 'test')
FORMAT_VERSION = 2
_SPLIT_IDS = {name: i for i, name in enumerate(SPLITS)}
_SHAPES = ('disc', 'square', 'triangle', 'diamond')


def _check_int(value, name: str, minimum: int) -> int:
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or value < minimum):
        raise ValueError(f'{name} must be an int >= {minimum}, got '
                         f'{value!r}.')
    return int(value)


def visit_order(label: int, num_frames: int) -> np.ndarray:
    """Which state (size step) each frame shows, for a class.

    Args:
        label (int): Class index, ``0 <= label < len(CLASSES)``.
        num_frames (int): Frames per video T (even, >= 4).

    Returns:
        np.ndarray: ``[T]`` int, a permutation of ``0..T-1``; frame ``t``
        shows state ``order[t]`` (0 = smallest).
    """
    if (not isinstance(label, (int, np.integer)) or isinstance(label, bool)
            or not 0 <= label < len(CLASSES)):
        raise ValueError(f'label must be an int in [0, {len(CLASSES)}), '
                         f'got {label!r}.')
    _check_int(num_frames, 'num_frames', 4)
    if num_frames % 2:
        raise ValueError(f'num_frames must be even, got {num_frames}.')
    T = num_frames
    forward = np.arange(T)
    out_and_back = np.concatenate([forward[0::2], forward[1::2][::-1]])
    orders = (forward, forward[::-1], out_and_back, T - 1 - out_and_back)
    return orders[label].copy()


def sample_scene(rng: np.random.Generator, width: int,
                 height: int) -> Dict:
    """Draw the nuisance parameters of one video (everything but the class).

    Args:
        rng (np.random.Generator): Random stream of this video.
        width (int): Frame width in pixels.
        height (int): Frame height in pixels.

    Returns:
        dict: background colours, object shape/colour/centre, its smallest
        and largest radius, its spin (start angle and signed total turn),
        static distractors and the noise level.
    """
    short = min(width, height)
    bg = rng.uniform(20, 235, size=3)
    bg2 = np.clip(bg + rng.uniform(-40, 40, size=3), 0, 255)
    while True:  # an object colour that stands out from the background
        colour = rng.uniform(0, 255, size=3)
        if np.abs(colour - bg).max() > 80:
            break
    # The object stays in the central part of the frame, so that every crop
    # of the test pipeline sees it.
    xy = np.array([width / 2, height / 2]) + rng.uniform(-0.1, 0.1, 2) * short
    distractors = []
    for _ in range(int(rng.integers(1, 3))):
        distractors.append(dict(
            shape=_SHAPES[int(rng.integers(len(_SHAPES)))],
            colour=rng.uniform(0, 255, size=3),
            radius=rng.uniform(0.05, 0.1) * short,
            angle=rng.uniform(0, 2 * np.pi),
            xy=rng.uniform([0, 0], [width, height])))
    return dict(
        bg=bg, bg2=bg2, gradient_angle=rng.uniform(0, 2 * np.pi),
        shape=_SHAPES[int(rng.integers(len(_SHAPES)))], colour=colour,
        xy=xy, r_min=rng.uniform(0.05, 0.09) * short,
        r_max=rng.uniform(0.22, 0.32) * short,
        angle=rng.uniform(0, 2 * np.pi),
        turn=rng.choice([-1, 1]) * rng.uniform(0, np.pi / 2),
        distractors=distractors, noise=rng.uniform(2, 8))


def _draw_shape(img: np.ndarray, shape: str, xy: np.ndarray, radius: float,
                angle: float, colour: np.ndarray) -> None:
    import cv2
    shift = 4  # sub-pixel precision: coordinates in 1/16 pixel
    scale = 1 << shift
    colour = tuple(float(c) for c in colour)
    if shape == 'disc':
        cv2.circle(img, tuple(int(round(v * scale)) for v in xy),
                   int(round(radius * scale)), colour, -1, cv2.LINE_AA, shift)
        return
    corners = {'square': 4, 'triangle': 3, 'diamond': 4}[shape]
    stretch = 1.6 if shape == 'diamond' else 1.0
    a = np.arange(corners) * 2 * np.pi / corners
    pts = np.stack([np.cos(a) * radius, np.sin(a) * radius * stretch], 1)
    c, s = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]])  # turn the shape by `angle`
    pts = np.round((pts + xy) * scale).astype(np.int32)
    cv2.fillConvexPoly(img, pts, colour, cv2.LINE_AA, shift)


def render_states(scene: Dict, num_frames: int, width: int, height: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Render the object in each of its T states, smallest first.

    Args:
        scene (dict): From :func:`sample_scene`.
        num_frames (int): Number of states T.
        width (int): Frame width.
        height (int): Frame height.
        rng (np.random.Generator): Stream for the per-state noise.

    Returns:
        np.ndarray: ``[T, H, W, 3]`` uint8 RGB; state ``k`` shows the object
        with radius ``r_min * (r_max / r_min) ** (k / (T - 1))``, turned by
        ``k / (T - 1) * turn``.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    g = np.cos(scene['gradient_angle']) * xx / width + np.sin(
        scene['gradient_angle']) * yy / height
    g = (g - g.min()) / max(float(g.max() - g.min()), 1e-6)
    background = (scene['bg'] * (1 - g[..., None]) +
                  scene['bg2'] * g[..., None]).astype(np.float32)
    for d in scene['distractors']:
        _draw_shape(background, d['shape'], d['xy'], d['radius'], d['angle'],
                    d['colour'])
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for k in range(num_frames):
        f = k / (num_frames - 1)
        img = background.copy()
        _draw_shape(img, scene['shape'], scene['xy'],
                    scene['r_min'] * (scene['r_max'] / scene['r_min'])**f,
                    scene['angle'] + f * scene['turn'], scene['colour'])
        img += rng.normal(0, scene['noise'], img.shape).astype(np.float32)
        frames[k] = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return frames


def make_video(label: int, seed: Sequence[int], num_frames: int = 16,
               width: int = 64, height: int = 48) -> np.ndarray:
    """Frames of one video of class ``label``.

    Args:
        label (int): Class index.
        seed (Sequence[int]): Seed of this video's random stream (same seed
            and any label: same scene, same set of frames).
        num_frames (int): Frames T (even). Defaults to 16.
        width (int): Frame width. Defaults to 64.
        height (int): Frame height. Defaults to 48.

    Returns:
        np.ndarray: ``[T, H, W, 3]`` uint8 RGB, in temporal order.
    """
    order = visit_order(label, num_frames)
    _check_int(width, 'width', 16)
    _check_int(height, 'height', 16)
    rng = np.random.default_rng(list(seed))
    scene = sample_scene(rng, width, height)
    return render_states(scene, num_frames, width, height, rng)[order]


def object_masks(label: int, seed: Sequence[int], num_frames: int = 16,
                 width: int = 64, height: int = 48) -> np.ndarray:
    """Where the moving object is in each frame of :func:`make_video`'s
    video (same arguments): ``[T, H, W]`` bool, in temporal order, the pixels
    the object covers at least half."""
    order = visit_order(label, num_frames)
    scene = sample_scene(np.random.default_rng(list(seed)), width, height)
    masks = np.zeros((num_frames, height, width), bool)
    for k in range(num_frames):
        f = k / (num_frames - 1)
        img = np.zeros((height, width, 3), np.float32)
        _draw_shape(img, scene['shape'], scene['xy'],
                    scene['r_min'] * (scene['r_max'] / scene['r_min'])**f,
                    scene['angle'] + f * scene['turn'], np.full(3, 1.0))
        masks[k] = img[..., 0] >= 0.5
    return masks[order]


def write_video(path: str, frames: np.ndarray, fps: float = 8.0) -> None:
    """Write ``[T, H, W, 3]`` uint8 RGB frames as an mp4 (``mp4v``)."""
    import cv2
    T, H, W = frames.shape[:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (W, H))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write an mp4v video to {path!r}.')
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # to BGR
    finally:
        writer.release()


def generate_dataset(out_dir: str, num_train: int = 64, num_val: int = 16,
                     num_test: int = 32, num_frames: int = 16,
                     width: int = 64, height: int = 48, seed: int = 0,
                     fps: float = 8.0) -> Dict[str, str]:
    """Write the videos and annotation lists of every split into ``out_dir``.

    Layout: ``{split}/{index:05d}.mp4``, ``{split}.txt`` (``VideoDataset``
    lists, paths relative to ``out_dir``), ``classes.txt`` (one name per
    line, line i = label i) and ``meta.json`` (the generation arguments).

    Args:
        out_dir (str): Output folder (created if missing).
        num_train (int): Training videos per class. Defaults to 64.
        num_val (int): Validation videos per class. Defaults to 16.
        num_test (int): Test videos per class. Defaults to 32.
        num_frames (int): Frames per video (even). Defaults to 16.
        width (int): Frame width. Defaults to 64.
        height (int): Frame height. Defaults to 48.
        seed (int): Seed of the whole data set. Defaults to 0.
        fps (float): Frame rate written into the files. Defaults to 8.

    Returns:
        dict: split name -> absolute path of its annotation list.
    """
    meta = _meta(num_train, num_val, num_test, num_frames, width, height,
                 seed, fps)
    visit_order(0, num_frames)  # validates num_frames
    counts = dict(train=num_train, val=num_val, test=num_test)
    ann_files = {}
    for split in SPLITS:
        os.makedirs(osp.join(out_dir, split), exist_ok=True)
        lines = []
        for i in range(counts[split] * len(CLASSES)):
            label = i % len(CLASSES)  # balanced, interleaved
            rel = f'{split}/{i:05d}.mp4'
            frames = make_video(label, (seed, _SPLIT_IDS[split], i),
                                num_frames, width, height)
            write_video(osp.join(out_dir, rel), frames, fps)
            lines.append(f'{rel} {label}\n')
        ann_files[split] = osp.abspath(osp.join(out_dir, f'{split}.txt'))
        with open(ann_files[split], 'w') as f:
            f.writelines(lines)
    with open(osp.join(out_dir, 'classes.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    # meta.json last: its presence marks a complete data set.
    with open(osp.join(out_dir, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    return ann_files


def _meta(num_train, num_val, num_test, num_frames, width, height, seed,
          fps) -> Dict:
    for name, value, minimum in (('num_train', num_train, 1),
                                 ('num_val', num_val, 0),
                                 ('num_test', num_test, 0),
                                 ('seed', seed, 0)):
        _check_int(value, name, minimum)
    if not isinstance(fps, (int, float)) or fps <= 0:
        raise ValueError(f'fps must be a positive number, got {fps!r}.')
    return dict(format_version=FORMAT_VERSION, classes=list(CLASSES),
                num_train=num_train, num_val=num_val, num_test=num_test,
                num_frames=num_frames, width=width, height=height, seed=seed,
                fps=float(fps))


def ensure_dataset(out_dir: str, **kwargs) -> Dict[str, str]:
    """Generate the data set into ``out_dir`` unless it is already there.

    The data set counts as present when ``out_dir/meta.json`` exists. If it
    records other generation arguments, nothing is overwritten: a
    ValueError names the differences (use another folder, or delete it).

    Args:
        out_dir (str): Data folder.
        **kwargs: As :func:`generate_dataset`.

    Returns:
        dict: split name -> absolute path of its annotation list.
    """
    import inspect
    defaults = {
        k: v.default
        for k, v in inspect.signature(generate_dataset).parameters.items()
        if k != 'out_dir'
    }
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f'ensure_dataset got unknown arguments '
                        f'{sorted(unknown)}; allowed: {sorted(defaults)}.')
    args = {**defaults, **kwargs}
    wanted = _meta(**args)
    existing = read_meta(out_dir)
    if existing is None:
        return generate_dataset(out_dir, **args)
    if existing != wanted:
        diff = {k: (existing.get(k), v) for k, v in wanted.items()
                if existing.get(k) != v}
        raise ValueError(
            f'{out_dir!r} holds a synthetic data set generated with other '
            f'arguments (name: (on disk, requested)): {diff}. Use another '
            f'folder or delete this one.')
    return {s: osp.abspath(osp.join(out_dir, f'{s}.txt')) for s in SPLITS}


def masks_of_file(out_dir: str, rel: str) -> np.ndarray:
    """:func:`object_masks` of the video ``rel`` (e.g. ``'test/00003.mp4'``)
    of the data set in ``out_dir``, from its ``meta.json`` and list."""
    meta = read_meta(out_dir)
    if meta is None:
        raise FileNotFoundError(f'{out_dir!r} holds no synthetic data set '
                                '(no meta.json).')
    split, name = osp.split(osp.normpath(rel))
    stem = osp.splitext(name)[0]
    if split not in _SPLIT_IDS or not stem.isdigit():
        raise ValueError(f'{rel!r} is not a video of the synthetic data set '
                         '(expected <split>/<index>.mp4).')
    index = int(stem)
    return object_masks(index % len(CLASSES),
                        (meta['seed'], _SPLIT_IDS[split], index),
                        meta['num_frames'], meta['width'], meta['height'])


def read_meta(out_dir: str) -> Optional[Dict]:
    """The ``meta.json`` of a generated data set, or None if absent."""
    path = osp.join(out_dir, 'meta.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='Generate the synthetic motion video data set.')
    parser.add_argument('--out', default='data/synthetic_motion',
                        help='output folder')
    parser.add_argument('--num-train', type=int, default=64,
                        help='training videos per class')
    parser.add_argument('--num-val', type=int, default=16,
                        help='validation videos per class')
    parser.add_argument('--num-test', type=int, default=32,
                        help='test videos per class')
    parser.add_argument('--num-frames', type=int, default=16)
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--height', type=int, default=48)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if the data set is there')
    args = parser.parse_args(argv)
    kwargs = dict(num_train=args.num_train, num_val=args.num_val,
                  num_test=args.num_test, num_frames=args.num_frames,
                  width=args.width, height=args.height, seed=args.seed)
    fn = generate_dataset if args.force else ensure_dataset
    ann_files = fn(args.out, **kwargs)
    for split, path in ann_files.items():
        with open(path) as f:
            n = sum(1 for _ in f)
        print(f'{split}: {n} videos, list {path}')


if __name__ == '__main__':
    main()
