"""Checks that ``tools/train.py`` and ``tools/test.py`` run before the Runner
builds anything, so a wrong path fails in a second with a message that
names the option, instead of after the model and data are built.

* :func:`check_checkpoints`: every checkpoint the config references
  (``load_from``, ``resume``, ``ViViTInitHook``, ``init_cfg=Pretrained``)
  exists and is complete.
* :func:`find_resumable_checkpoint`: the newest *complete* checkpoint of a
  work directory (a file truncated by a kill is passed over).
* :func:`check_data`: the annotation files and video folders the run reads
  exist, and the list files have MMAction2's layout.
* :func:`check_all`: all of them, and the optional packages the config's
  transforms and visualiser need, every problem reported at once, each
  with its fix (:func:`raise_problems`).
"""
import glob
import logging
import os
import os.path as osp
import zipfile
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from vivit_mm.convert.io import disallowed_globals, refusal_message


def _is_local(path: Any) -> bool:
    return isinstance(path, (str, os.PathLike)) and '://' not in str(path)


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None if it looks
    complete. Only the file's container is checked (a torch zip file must
    have its central directory, i.e. it was written to the end); nothing
    is unpickled."""
    if not osp.exists(path):
        return 'the file does not exist'
    if osp.isdir(path):
        return 'it is a directory'
    size = osp.getsize(path)
    if size == 0:
        return 'the file is empty (0 bytes)'
    with open(path, 'rb') as f:
        head = f.read(4)
    if head.startswith(b'PK'):  # torch's zip format (torch >= 1.6)
        try:
            with zipfile.ZipFile(path) as z:
                if not any(n.endswith('data.pkl') for n in z.namelist()):
                    return 'it is a zip file without a torch data.pkl'
        except zipfile.BadZipFile as e:
            return f'the file ({size} bytes) is truncated or damaged ({e})'
    return None


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from.

    What mmengine's ``find_latest_checkpoint`` finds (the file that
    ``work_dir/last_checkpoint`` names), if it is complete; else the other
    ``*.pth`` files of ``work_dir`` from the newest (``best_*`` excluded).
    Incomplete files are passed over with a warning: ``AtomicCheckpointHook``
    never leaves one, but a work directory written by mmengine's
    ``CheckpointHook`` (MMAction2's own ``tools/train.py``) or a machine
    that lost power after a save can.

    Returns:
        str | None: The checkpoint, or None when there is none.
    """
    from mmengine.runner.checkpoint import find_latest_checkpoint
    others = [p for p in glob.glob(osp.join(work_dir, '*.pth'))
              if not osp.basename(p).startswith('best_')]
    candidates = [find_latest_checkpoint(work_dir)] + sorted(
        others, key=osp.getmtime, reverse=True)
    seen = set()
    for path in candidates:
        if not path or path in seen:
            continue
        seen.add(path)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        print_log(f'Resume: passing over {path!r}: {problem}.',
                  logger='current', level=logging.WARNING)
    return None


def _walk(obj: Any, prefix: str) -> Iterator[Tuple[str, dict]]:
    """Every dict in a config tree with its dotted path."""
    if isinstance(obj, dict):
        yield prefix, obj
        for k, v in obj.items():
            yield from _walk(v, f'{prefix}.{k}' if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f'{prefix}[{i}]')


def check_checkpoint_file(option: str, path: Any, why: str = '') -> None:
    """Raise if the local checkpoint ``path`` (given as ``option``) is
    missing (FileNotFoundError), empty or truncated, or holds objects a
    weights-only load refuses (ValueError); remote paths are not checked.
    Nothing in the file is unpickled."""
    if not _is_local(path):
        return
    local = os.path.expanduser(os.fspath(path))
    problem = checkpoint_problem(local)
    if problem is not None:
        exc = FileNotFoundError if 'does not exist' in problem else ValueError
        raise exc(f'{option}={os.fspath(path)!r}: {problem}{why}. Fix the '
                  'path or remove the option; nothing has been trained.')
    if disallowed_globals(local):
        raise ValueError(f'{option}: {refusal_message(local)}')


def check_checkpoints(cfg: Config) -> None:
    """Fail now, before the Runner builds anything, if a checkpoint the
    config needs is missing or incomplete (every such problem at once, see
    :func:`checkpoint_problems`).

    Raises:
        FileNotFoundError: A referenced checkpoint does not exist.
        ValueError: It exists but is empty or truncated.
    """
    raise_problems(checkpoint_problems(cfg))


def checkpoint_problems(cfg: Config) -> List[Exception]:
    """What is wrong with the checkpoints the config needs, as exceptions
    (not raised).

    Checked: every ``init_cfg=dict(type='Pretrained', checkpoint=...)`` in
    the model (the Runner initialises the model before it loads), then
    ``load_from`` (also the checkpoint of ``resume=True``), and, when no
    weights will be restored (no ``load_from``, nothing to resume), the
    ``checkpoint`` of a ``ViViTInitHook``. URLs and other remote paths are
    not checked here.
    """
    problems: List[Exception] = []

    def check(*args):
        try:
            check_checkpoint_file(*args)
        except (FileNotFoundError, ValueError) as e:
            problems.append(e)

    for path, node in _walk(cfg.get('model', {}), 'model'):
        # The Runner initialises the model before load_from/resume.
        if node.get('type') == 'Pretrained' and 'checkpoint' in node:
            check(f'{path}.checkpoint', node['checkpoint'])
    load_from = cfg.get('load_from', None)
    resume = bool(cfg.get('resume', False))
    if load_from is not None:
        check('load_from', load_from,
              ' (resume=True resumes from it)' if resume else '')
        return problems  # restored weights win over ViViTInitHook
    if resume and find_resumable_checkpoint(cfg.work_dir):
        return problems
    for i, hook in enumerate(cfg.get('custom_hooks', None) or []):
        if isinstance(hook, dict) and hook.get('type') == 'ViViTInitHook':
            check(f'custom_hooks[{i}].checkpoint', hook.get('checkpoint'),
                  _image_checkpoint_hint(cfg, hook))
    return problems


def raise_problems(problems: List[Exception]) -> None:
    """Raise nothing, the one problem, or all of them in one exception:
    ``FileNotFoundError`` when every problem is a missing file, else
    ``ValueError``. Each problem keeps its own message and fix; a fix
    repeated word for word is written once."""
    if not problems:
        return
    if len(problems) == 1:
        raise problems[0]
    kind = FileNotFoundError if all(
        isinstance(p, FileNotFoundError) for p in problems) else ValueError
    lines, fixes = [], []
    for i, p in enumerate(problems, 1):
        text = str(p)
        fix = getattr(p, 'fix', '')
        if fix and fix in fixes:
            text = text[:-len(fix)] + \
                f' (fix: as for {fixes.index(fix) + 1}.)'
        fixes.append(fix)
        lines.append(f'{i}. {text}')
    raise kind(f'{len(problems)} problems, found before anything was built '
               'or run:\n' + '\n'.join(lines))


def check_all(cfg: Config, tool: str, checkpoint: Optional[str] = None
              ) -> None:
    """Every pre-flight check of ``tool`` (``'train'``/``'test'``), all
    problems reported at once (:func:`raise_problems`): the data
    (:func:`data_problems`), the checkpoints (``checkpoint``: the test
    tool's; training: :func:`checkpoint_problems`) and the optional
    packages the config needs (:func:`package_problems`)."""
    problems = data_problems(cfg, tool)
    if checkpoint is not None:
        try:
            check_checkpoint_file('CHECKPOINT', checkpoint)
        except (FileNotFoundError, ValueError) as e:
            problems.append(e)
    elif tool == 'train':
        problems += checkpoint_problems(cfg)
    problems += package_problems(cfg)
    raise_problems(problems)


#: Config types -> the optional module they import.
NEEDS = {'PyAVIndexInit': 'av', 'PyAVIndexDecode': 'av', 'PyAVInit': 'av',
         'PyAVDecode': 'av', 'PyAVDecodeMotionVector': 'av',
         'TorchCodecInit': 'torchcodec', 'TorchCodecDecode': 'torchcodec',
         'TensorboardVisBackend': 'tensorboard'}


def package_problems(cfg: Config) -> List[Exception]:
    """The optional packages that the config's transforms and visualiser
    backends need but that do not import (one ``ImportError`` each)."""
    from vivit_mm.utils.optional import MissingDependency, missing, require
    needed = {}
    for path, node in _walk(cfg.to_dict(), ''):
        module = NEEDS.get(str(node.get('type', '')).split('.')[-1])
        if module and module not in needed:
            needed[module] = f'{path} ({node["type"]})'
    problems: List[Exception] = []
    for module in missing(*needed):
        try:
            require(module, purpose=needed[module])
        except MissingDependency as e:
            problems.append(e)
    return problems


def _image_checkpoint_hint(cfg: Config, hook: dict) -> str:
    """What a missing ViViTInitHook checkpoint should be and how to get
    one."""
    from vivit_mm.convert.image_vit import where_to_get
    from vivit_mm.models import BaseViViT
    backbone = cfg.model.get('backbone', {})
    try:
        dims = BaseViViT.parse_arch(backbone.get('arch', 'b'))['embed_dims']
    except ValueError:
        return ''
    tubelet = hook.get('tubelet_init', 'central_frame')
    return (f' (ViViTInitHook starts training from this image ViT). '
            f'{where_to_get(dims, backbone.get("patch_size", 16))} Point the '
            'hook at the file you downloaded with --cfg-options '
            'custom_hooks.0.checkpoint=PATH. The tubelet embedding will be '
            f"initialised with tubelet_init={tubelet!r}")


#: MMAction2's data preparation (lists and videos) per data set.
DATA_TOOLS = 'https://github.com/open-mmlab/mmaction2/tree/main/tools/data'
#: The data loaders each tool reads.
SPLITS = {'train': ('train_dataloader', 'val_dataloader'),
          'test': ('test_dataloader', )}


def _inner_dataset(dataset: Any) -> Any:
    while isinstance(dataset, dict) and isinstance(dataset.get('dataset'),
                                                   dict):
        dataset = dataset['dataset']
    return dataset


def _join(root: Optional[str], path: Optional[str]) -> Optional[str]:
    """``path`` under ``root`` as mmengine's ``BaseDataset`` joins them."""
    if not path or not root or osp.isabs(path) or '://' in path:
        return path
    return osp.join(root, path)


def _list_problem(ann_file: str) -> Optional[str]:
    """What is wrong with the first lines of a video list file."""
    with open(ann_file, encoding='utf-8', errors='replace') as f:
        lines = [line.strip() for _, line in zip(range(5), f)
                 if line.strip()]
    if not lines:
        return 'it is empty'
    for line in lines:
        parts = line.split()
        if len(parts) < 2 or not all(p.lstrip('-').isdigit()
                                     for p in parts[1:]):
            return (f'its line {line!r} is not "relative/path.mp4 label" '
                    '(a video path, a space, an integer class index)')
    return None


def check_data(cfg: Config, tool: str) -> None:
    """Fail now, before the Runner and its config dump, if a data set the
    ``tool`` (``'train'`` or ``'test'``) reads has no annotation file or
    video folder, or a list file of the wrong layout (every such problem at
    once, see :func:`data_problems`).

    Raises:
        FileNotFoundError: A list file or video folder does not exist.
        ValueError: A list file is empty or not ``path label`` lines.
    """
    raise_problems(data_problems(cfg, tool))


def _problem(kind, text: str, fix: str) -> Exception:
    e = kind(text + fix)
    e.fix = fix
    return e


def data_problems(cfg: Config, tool: str) -> List[Exception]:
    """What is wrong with the data sets the ``tool`` reads, as exceptions
    (not raised). Only ``VideoDataset``-like sets (``ann_file`` and
    ``data_prefix.video``) are checked; the synthetic data set generates
    itself."""
    problems: List[Exception] = []
    for key in SPLITS[tool]:
        loader = cfg.get(key, None)
        if not isinstance(loader, dict):
            continue
        ds = _inner_dataset(loader.get('dataset'))
        if not isinstance(ds, dict) or ds.get('type') == \
                'SyntheticMotionDataset' or 'ann_file' not in ds:
            continue
        root = ds.get('data_root')
        ann_file = _join(root, ds.get('ann_file'))
        prefix = (ds.get('data_prefix') or {}).get('video')
        folder = _join(root, prefix)
        where = (f'{key}.dataset: ann_file={ann_file!r}, '
                 f'data_prefix.video={folder!r}')
        fix = (' A list file has one line per video, "relative/path.mp4 '
               'label" (the path relative to data_prefix.video, the label an '
               f'integer class index). MMAction2\'s tools prepare Kinetics '
               f'({DATA_TOOLS}/kinetics) and Something-Something v2 '
               f'({DATA_TOOLS}/sthv2): download the videos, then build the '
               'lists with tools/data/build_file_list.py. Or point the config '
               'at your data: --cfg-options <loader>.dataset.ann_file=... '
               '(<loader> as named above); nothing has been built or run.')
        if ann_file and _is_local(ann_file) and not osp.isfile(ann_file):
            missing = [f'the annotation file {ann_file!r}']
            if folder and _is_local(folder) and not osp.isdir(folder):
                missing.append(f'the video folder {folder!r}')
            problems.append(_problem(
                FileNotFoundError, f'{where}: {" and ".join(missing)} do'
                f'{"es" if len(missing) == 1 else ""} not exist.', fix))
            continue
        if folder and _is_local(folder) and not osp.isdir(folder):
            problems.append(_problem(
                FileNotFoundError,
                f'{where}: the video folder {folder!r} does not exist.', fix))
        if ann_file and _is_local(ann_file):
            problem = _list_problem(ann_file)
            if problem:
                problems.append(_problem(
                    ValueError, f'{where}: the annotation file {problem}.',
                    fix))
    return problems
