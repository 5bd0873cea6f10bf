"""The benchmark's report: markdown lines (echoed as they come) and JSON
records, and the number formats of its tables."""
import json
from pathlib import Path
from typing import List, Optional, Sequence

MiB = 2**20


class Report:
    """Collects markdown lines and JSON records.

    Attributes:
        lines (list[str]): The markdown, line by line.
        data (dict): JSON-ready records, by section.
    """

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.data: dict = {}

    def add(self, *lines: str) -> None:
        """Append ``lines`` to the markdown and print them."""
        for line in lines:
            print(line, flush=True)
            self.lines.append(line)

    def table(self, header: Sequence[str],
              rows: Sequence[Sequence[object]]) -> None:
        """Append a markdown table and a blank line."""
        self.add('| ' + ' | '.join(header) + ' |',
                 '|' + '---|' * len(header),
                 *('| ' + ' | '.join(map(str, r)) + ' |' for r in rows), '')

    def write(self, md_path: Path, json_path: Path) -> None:
        """Write the markdown and the JSON (non-JSON values as ``str``)."""
        Path(md_path).write_text('\n'.join(self.lines) + '\n')
        Path(json_path).write_text(
            json.dumps(self.data, indent=1, default=str))


def fmt_num(x: float) -> str:
    """3 significant digits, no exponent below 1000."""
    return f'{x:.0f}' if abs(x) >= 100 else f'{x:.3g}'


def fmt_bytes(n: Optional[float]) -> str:
    """Bytes as MiB with :func:`fmt_num`; ``'-'`` for None."""
    return '-' if n is None else fmt_num(n / MiB)


def fmt_load(load: Sequence[float]) -> str:
    """A ``(before, after)`` load average pair as ``'0.4/1.0'``."""
    return f'{load[0]:.1f}/{load[1]:.1f}'


__all__ = ['Report', 'fmt_num', 'fmt_bytes', 'fmt_load', 'MiB']
