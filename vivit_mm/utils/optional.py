"""Optional dependencies: one check, one line that says what to install.

A tool calls :func:`require` (or :func:`require_or_exit`) with the modules
its job needs, after parsing its arguments and before any work; a missing
one ends with one line such as ``export_onnx.py needs onnxscript: pip
install -e '.[deploy]' (or pip install onnxscript)``, never a traceback.
The base install (``install_requires`` in setup.cfg) needs none of them.
"""
import importlib
from typing import Dict, List, Tuple

#: Import name -> (pip package, vivit_mm extra in setup.cfg).
OPTIONAL: Dict[str, Tuple[str, str]] = {
    'av': ('av', 'pyav'),
    'torchcodec': ('torchcodec', 'torchcodec'),
    'onnx': ('onnx', 'deploy'),
    'onnxruntime': ('onnxruntime', 'deploy'),
    'onnxscript': ('onnxscript', 'deploy'),
    'tensorboard': ('tensorboard', 'tensorboard'),
    'transformers': ('transformers', 'tests'),
    'safetensors': ('safetensors', 'convert'),
    'msgpack': ('msgpack', 'convert'),
    'matplotlib': ('matplotlib', 'plot'),
}
#: What a module needs beyond its pip package.
NOTES = {'torchcodec': 'torchcodec also needs FFmpeg 4-8 shared libraries '
                       '(e.g. apt-get install ffmpeg)'}


class MissingDependency(ImportError):
    """An optional package that a job needs is not installed."""


def is_available(module: str) -> bool:
    """Whether ``module`` imports (a broken install counts as missing)."""
    try:
        importlib.import_module(module)
    except Exception:  # ImportError, or e.g. OSError for missing libraries
        return False
    return True


def missing(*modules: str) -> List[str]:
    """The ``modules`` that do not import."""
    return [m for m in modules if not is_available(m)]


def install_hint(modules) -> str:
    """``pip install -e '.[deploy]' (or pip install onnx onnxscript)``."""
    modules = list(modules)
    extras = sorted({OPTIONAL.get(m, (m, None))[1] for m in modules} -
                    {None})
    pkgs = ' '.join(OPTIONAL.get(m, (m, None))[0] for m in modules)
    hint = (f"pip install -e '.[{','.join(extras)}]' (or pip install "
            f'{pkgs})' if extras else f'pip install {pkgs}')
    notes = [NOTES[m] for m in modules if m in NOTES]
    return hint + ''.join(f'; {n}' for n in notes)


def require(*modules: str, purpose: str) -> None:
    """Raise :class:`MissingDependency` with one line naming what to
    install unless every one of ``modules`` imports.

    Args:
        *modules (str): Import names, e.g. ``'onnx', 'onnxscript'``.
        purpose (str): Who needs them, e.g. ``'export_onnx.py'`` or
            ``'--tensorboard'``.
    """
    absent = missing(*modules)
    if absent:
        raise MissingDependency(
            f'{purpose} needs {", ".join(absent)}: {install_hint(absent)}.')


def require_or_exit(*modules: str, purpose: str) -> None:
    """:func:`require` for command-line tools: ``SystemExit('error: ...')``
    (status 1, one line on stderr) instead of the exception."""
    try:
        require(*modules, purpose=purpose)
    except MissingDependency as e:
        raise SystemExit(f'error: {e}') from None


__all__ = ['OPTIONAL', 'MissingDependency', 'is_available', 'missing',
           'install_hint', 'require', 'require_or_exit']
