"""The table of what the reliability suite tried and what happened (issue 13), printed at the end of the run.

Every case of ``test_inputs.py``, ``test_degenerate_gt.py`` and ``test_bad_input.py`` records one row with the
``reliability_table`` fixture: a section ("Inputs", "Degenerate ground truth", "Bad input"), the model, the
input and the outcome (``ok`` with what was checked, or the text of the clear error the model raised). The
session-finish hook prints one matrix per section (model x input), and, when ``RELIABILITY_TABLE`` names a
file, writes it there between the markers of ``docs/reliability.md`` (the rest of that file is kept)::

    RELIABILITY_TABLE=docs/reliability.md .venv/bin/python -m pytest tests/test_reliability -m "not slow or slow"
"""
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

SECTIONS = ('Inputs', 'Degenerate ground truth', 'Bad input')
BEGIN = '<!-- BEGIN GENERATED: tests/test_reliability (do not edit by hand) -->'
END = '<!-- END GENERATED -->'
_ROWS: List[Tuple[str, str, str, str, str]] = []  # section, model, input, status, text


class ReliabilityTable:
    """Collects ``(section, model, input) -> outcome`` rows for the end-of-session table."""

    def add(self, section: str, model: str, case: str, status: str, text: str = '') -> None:
        """``status``: ``'ok'``, ``'error'`` (a clear error, ``text`` its message) or ``'FAIL'``."""
        assert section in SECTIONS, section
        _ROWS.append((section, model, case, status, ' '.join(str(text).split())))


@pytest.fixture
def reliability_table() -> ReliabilityTable:
    return ReliabilityTable()


def _short(text: str, limit: int = 220) -> str:
    text = text.replace('|', '\\|')
    return text if len(text) <= limit else text[:limit - 3] + '...'


def render(rows=None) -> str:
    """Markdown: per section, the model x input matrix (``ok`` / ``E<k>`` / ``FAIL``) and the error texts."""
    rows = _ROWS if rows is None else rows
    out = []
    for section in SECTIONS:
        cells: Dict[Tuple[str, str], str] = {}
        models, cases = OrderedDict(), OrderedDict()
        labels: Dict[str, str] = {}  # message pattern -> E<k>
        examples: 'OrderedDict[str, str]' = OrderedDict()  # E<k> -> first text
        for sec, model, case, status, text in rows:
            if sec != section:
                continue
            models[model] = cases[case] = None
            if status == 'error':
                # one footnote per message pattern: without the leading module name and the numbers
                pattern = re.sub(r'\d+', '#', re.sub(r'^[\w.]+(\([^)]*\))?\s', '', text))
                label = labels.setdefault(pattern, f'E{len(labels) + 1}')
                examples.setdefault(label, text)
                cells[model, case] = label
            else:
                cells[model, case] = status
        out.append(f'## {section}\n')
        if not models:
            out.append('(not run in this session)\n')
            continue
        n = len(cells)
        n_ok = sum(v == 'ok' for v in cells.values())
        n_fail = sum(v == 'FAIL' for v in cells.values())
        out.append(f'{n} model x input cases: {n_ok} ok, {n - n_ok - n_fail} clear errors, {n_fail} failures.\n')
        out.append('| model | ' + ' | '.join(cases) + ' |')
        out.append('|---' * (len(cases) + 1) + '|')
        for model in models:
            out.append(f'| {model} | ' + ' | '.join(cells.get((model, c), '') for c in cases) + ' |')
        if examples:
            out.append('\nErrors raised (one example text per message pattern):\n')
            out.extend(f'* **{label}**: {_short(text)}' for label, text in examples.items())
        out.append('')
    return '\n'.join(out)


def write(path: Path, table: str) -> None:
    """Replace the generated block of ``path`` (created with the headings if missing)."""
    block = f'{BEGIN}\n{table}\n{END}'
    text = path.read_text() if path.exists() else f'# Reliability\n\n{BEGIN}\n{END}\n'
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + '\n\n' + block + '\n'
    path.write_text(text)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _ROWS:
        return
    table = render()
    terminalreporter.section('reliability table (issue 13)')
    terminalreporter.write_line(table)
    target = os.environ.get('RELIABILITY_TABLE')
    if target:
        write(Path(target), table)
        terminalreporter.write_line(f'written to {target}')
