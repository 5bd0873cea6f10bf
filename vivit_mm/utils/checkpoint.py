"""Safe checkpoint reading: ``torch.load(weights_only=True)``, never a
pickle that can run code."""
import os
from typing import Any, Union

import torch


def safe_load(src: Union[str, os.PathLike, Any],
              map_location: Union[str, torch.device] = 'cpu') -> Any:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Args:
        src (str | PathLike | file): Checkpoint path or open binary file.
        map_location: Where to put tensors. Defaults to ``'cpu'``.

    Raises:
        FileNotFoundError: ``src`` is a path that does not exist.
        ValueError: The file holds objects that a weights-only load refuses
            (it could run code); the message names them.
    """
    if isinstance(src, (str, os.PathLike)) and not os.path.isfile(src):
        raise FileNotFoundError(f'Checkpoint {os.fspath(src)!r} does not exist.')
    try:
        return torch.load(src, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError with the globals
        if 'weights_only' not in str(e) and 'Unsupported global' not in str(e):
            raise
        raise ValueError(
            f'Refusing to load checkpoint {src!r}: it holds Python objects '
            f'that a weights-only load does not allow, so reading it could '
            f'run code. Details from torch: {e}') from e
