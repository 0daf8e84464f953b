"""The results folder: raw JSON and CSV, markdown tables, PNG plots, and the README tables made from them.

``write_report(folder)`` reads ``<folder>/results.json`` (written by ``tools/benchmark.py run``) and writes

* ``costs.csv``, ``operators.csv``, ``accuracy.csv``, ``curves.csv``, ``published.csv`` (flat copies of the JSON);
* ``tables.md``: every table (cost with ratios to the task's baseline, accuracy, operator scaling, published);
* ``plots/operators.png`` (time and memory against resolution, one panel per operation),
  ``plots/accuracy_vs_time.png`` (learning curves, one panel per task), ``plots/pareto.png`` (accuracy
  against inference latency, one panel per task) — the last two only when accuracy was measured.

``update_readmes(folder)`` writes the tables between ``<!-- benchmark:start -->`` and ``<!-- benchmark:end -->``
in ``README.md`` and in every ``configs/<family>/README.md`` (a file without the markers is left alone and
reported), so no number is copied by hand.
"""
import csv
import json
import math
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from mmcluster.utils.toy_run import REPO

START, END = '<!-- benchmark:start -->', '<!-- benchmark:end -->'
TASKS = ('classification', 'semantic', 'detection', 'instance', 'panoptic')
FAMILIES = ('context_cluster', 'clustr', 'hcformer', 'clusterformer', 'kmax_deeplab', 'baselines')


# --------------------------------------------------------------------------------------------- formatting
def fmt(value: Any, digits: int = 1) -> str:
    """A number for a table (``-`` for a missing one)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, int):
        return f'{value:,}'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def fmt_spec(value: Any, spec: str = '.1f') -> str:
    """``format(value, spec)``, ``-`` for a missing value (tables whose columns need other formats than
    :func:`fmt`'s, e.g. ``.1e``)."""
    return '-' if value is None else format(value, spec)


def with_ratio(value: Any, ratio: Any, digits: int = 1) -> str:
    """``value (ratio×)``; only the value when there is no ratio."""
    text = fmt(value, digits)
    return text if ratio is None or text == '-' else f'{text} ({ratio:.2f}×)'


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table (cells are strings; ``|`` escaped)."""
    def cell(x):
        return str(x).replace('|', '\\|')

    lines = ['| ' + ' | '.join(cell(x) for x in header) + ' |', '|' + '|'.join(' --- ' for _ in header) + '|']
    lines += ['| ' + ' | '.join(cell(x) for x in row) + ' |' for row in rows]
    return '\n'.join(lines)


def parse_markdown_table(text: str) -> List[Dict[str, str]]:
    """Rows of the first markdown table in ``text`` as dicts (header -> cell); the inverse of
    :func:`markdown_table` for the tests and for readers of ``tables.md``."""
    lines: List[str] = []
    for line in text.splitlines():
        if line.strip().startswith('|'):
            lines.append(line.strip())
        elif lines:  # the first table ended
            break
    if len(lines) < 2:
        return []
    split = lambda line: [c.strip().replace('\\|', '|') for c in re.split(r'(?<!\\)\|', line.strip())[1:-1]]
    header = split(lines[0])
    return [dict(zip(header, split(line))) for line in lines[2:]]


def _in_repo(folder: Path) -> Path:
    """``folder`` relative to the checkout (where links start from), or the absolute folder outside it."""
    try:
        return Path(folder).resolve().relative_to(REPO)
    except ValueError:
        return Path(folder).resolve()


def _link(config: str, base: Path) -> str:
    path = Path(config)
    try:
        rel = (REPO / path).resolve().relative_to(REPO)
    except ValueError:
        return path.name
    if base.is_absolute():  # a results folder outside the checkout: no relative link
        return path.stem
    return f'[{path.stem}]({Path(*([".."] * len(base.parts))) / rel if base.parts else rel})'


# --------------------------------------------------------------------------------------------- tables
def _flops_label(row: Dict[str, Any]) -> str:
    return f'GFLOPs @{row["input_size"][0]}×{row["input_size"][1]}' if row.get('input_size') else 'GFLOPs'


def cost_table(costs: List[Dict[str, Any]], tasks: Sequence[str] = TASKS, families: Optional[Sequence[str]] = None,
               base: Path = Path()) -> str:
    """Per task: params, FLOPs, latency, throughput, training step, memory, each with its ratio to the baseline."""
    parts = []
    for task in tasks:
        rows = [r for r in costs if r['task'] == task and (families is None or r['family'] in families
                                                             or r['is_baseline'])]
        if not rows or (families is not None and 'baselines' not in families
                        and all(r['is_baseline'] for r in rows)):
            continue  # a family without a model in this task: no table of the baseline alone
        first = rows[0]
        header = ['model', 'precision', 'params (M)', _flops_label(first), 'latency (ms)', 'throughput (img/s)',
                  'train step (ms)', 'inference mem (MiB)', 'train mem (MiB)', 'config']
        body = []
        for r in rows:
            name = f'**{r["model"]}** (baseline)' if r['is_baseline'] else r['model']
            if r.get('error'):
                body.append([name, r['precision'], fmt(_m(r['params'])), fmt(_g(r['flops']), 2),
                             f'failed: {r["error"]}', '-', '-', '-', '-', _link(r['config'], base)])
                continue
            body.append([name, r['precision'], with_ratio(_m(r['params']), r.get('params_ratio'), 2),
                         with_ratio(_g(r['flops']), r.get('flops_ratio'), 2),
                         with_ratio(r['latency_ms'], r.get('latency_ms_ratio')),
                         with_ratio(r['throughput_ips'], r.get('throughput_ips_ratio')),
                         with_ratio(r['train_step_ms'], r.get('train_step_ms_ratio')),
                         with_ratio(r['infer_mem_mib'], r.get('infer_mem_mib_ratio'), 0),
                         with_ratio(r['train_mem_mib'], r.get('train_mem_mib_ratio'), 0),
                         _link(r['config'], base)])
        train = first.get('train_shape')
        parts.append(f'**{task}** (inference at {first["input_size"][0]}×{first["input_size"][1]}, batch 1 / '
                     f'{first["batch"]}; training batch {first["train_batch"]}'
                     + (f' of {train[-2]}×{train[-1]}' if train else '') + ')\n\n' + markdown_table(header, body))
    return '\n\n'.join(parts)


def _m(x):
    return None if x is None else x / 1e6


def _g(x):
    return None if x is None else x / 1e9


def uncounted_table(costs: List[Dict[str, Any]]) -> str:
    """The operators the FLOP counter could not see, per model (calls per forward)."""
    body = [[r['model'], ', '.join(f'{k} ×{v}' for k, v in sorted(r['uncounted'].items(), key=lambda kv: -kv[1]))
             or '-'] for r in costs if r.get('precision', 'fp32') == 'fp32']
    return markdown_table(['model', 'operators not counted (calls)'], body)


def accuracy_table(accuracy: List[Dict[str, Any]], status: Optional[str], families: Optional[Sequence[str]] = None,
                   base: Path = Path()) -> str:
    """Metric reached after the budget, iterations, and the baseline's value for comparison."""
    if not accuracy:
        return f'Accuracy: {status or "not run"}.'
    body = []
    for r in accuracy:
        if families is not None and r['family'] not in families and not r['is_baseline']:
            continue
        metrics = ', '.join(f'{k} {fmt(v)}' for k, v in r['metrics'].items())
        body.append([r['task'], f'**{r["model"]}** (baseline)' if r['is_baseline'] else r['model'],
                     f'failed: {r["error"]}' if r.get('error') else fmt(r['value']), metrics or '-',
                     fmt(r['iters']), '-' if r.get('minutes') is None else f'{r["minutes"]:g}',
                     _link(r['config'], base)])
    return markdown_table(['task', 'model', 'primary metric', 'metrics', 'iterations', 'budget (min)', 'config'],
                          body)


def operator_table(operators: List[Dict[str, Any]]) -> str:
    """Per operation and resolution: time and memory of each form, ratios to the clustering form."""
    body = []
    for r in operators:
        size = f'{r["height"]}×{r["width"]}'
        if r['status'] != 'ok':
            body.append([r['op'], size, fmt(r['tokens']), r['form'], r['status'], '-'])
            continue
        body.append([r['op'], size, fmt(r['tokens']), r['form'], with_ratio(r['time_ms'], r.get('ratio_time')),
                     with_ratio(r['mem_mib'], r.get('ratio_mem'), 0)])
    return markdown_table(['operation', 'image', 'tokens', 'form', 'time (ms, × clustering)',
                           'extra peak mem (MiB, × clustering)'], body)


PUBLISHED_COLUMNS = (('top1', 'top-1'), ('box_AP', 'box AP'), ('mask_AP', 'mask AP'), ('PQ', 'PQ'),
                     ('PQ_th', 'PQ th'), ('mIoU', 'mIoU'))


def published_table(published: List[Dict[str, Any]], families: Optional[Sequence[str]] = None,
                    base: Path = Path()) -> str:
    """Our params / FLOPs of the full-size configs beside the paper's params / FLOPs / accuracy."""
    body = []
    for r in published:
        if families is not None and r['family'] not in families:
            continue
        p = r['published']
        ours_params = f'failed: {r["error"]}' if r.get('error') else fmt(_m(r.get('params')), 1)
        body.append([r['model'], f'{r["shape"][0]}×{r["shape"][1]}', ours_params, fmt(_g(r.get('flops')), 1),
                     fmt(p.get('params_M'), 1), fmt(p.get('GFLOPs'), 1),
                     *(fmt(p.get(k), 1) for k, _ in PUBLISHED_COLUMNS), r['source'], _link(r['config'], base)])
    return markdown_table(['model', 'input', 'params (M), ours', 'GFLOPs, ours', 'params (M), paper',
                           'GFLOPs, paper', *(label for _, label in PUBLISHED_COLUMNS), 'source', 'config'], body)


# --------------------------------------------------------------------------------------------- files
def _csv(path: Path, rows: List[Dict[str, Any]]) -> None:
    keys: List[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()})


def load_results(folder: Path) -> Dict[str, Any]:
    """``<folder>/results.json`` with every part present (empty lists for parts not measured)."""
    path = Path(folder) / 'results.json'
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found: give a folder written by `tools/benchmark.py run`')
    results = json.loads(path.read_text())
    for key in ('costs', 'operators', 'accuracy', 'published'):
        results.setdefault(key, [])
    results.setdefault('meta', {})
    return results


CLOCK_WORDS = {'cpu': 'CPU time of the measuring thread', 'wall': 'wall-clock time'}


def meta_lines(meta: Dict[str, Any]) -> str:
    """What was measured, where and how (the header of every table)."""
    m = meta
    return (f'Measured by `{m.get("command", "tools/benchmark.py")}` on {m.get("date", "?")}: {m.get("machine", "?")}, '
            f'device {m.get("device", "cpu")}, {m.get("threads", 1)} thread(s), torch {m.get("torch", "?")}; '
            f'model costs are medians over {m.get("rounds", "?")} interleaved rounds × {m.get("repeats", "?")} calls '
            f'after {m.get("warmup", "?")} warm-up call(s) ({CLOCK_WORDS.get(m.get("clock"), "time")}), operator '
            f'times medians over {m.get("op_rounds", "?")} rounds ({CLOCK_WORDS.get(m.get("op_clock"), "time")}). '
            f'{m.get("note", "")}'
            + ''.join(f' The {part} come from `{m[part + "_from"]}`.' for part in ('costs', 'operators', 'accuracy',
                                                                                  'published')
                      if m.get(part + '_from'))).strip()


def tables_markdown(results: Dict[str, Any], families: Optional[Sequence[str]] = None, base: Path = Path(),
                    level: int = 2) -> str:
    """All tables of a results folder as one markdown document (``families``: only their rows)."""
    h = '#' * level
    meta = results['meta']
    parts = [meta_lines(meta)]
    if results['costs']:
        parts += [f'{h} Cost on the toy protocol (ratios: × the same task\'s baseline, same run)',
                  cost_table(results['costs'], families=families, base=base)]
    parts += [f'{h} Accuracy after the same training budget',
              accuracy_table(results['accuracy'], meta.get('accuracy_status'), families, base)]
    if results['published']:
        parts += [f'{h} Full-size models: our parameters / FLOPs beside the published numbers',
                  'FLOPs: one multiply-add = one FLOP, at the stated input; Context Clusters\' parameter counts '
                  '(printed in units of 2^20) converted to millions.',
                  published_table(results['published'], families, base)]
    if families is None:
        if results['operators']:
            parts += [f'{h} Clustering operations against the dense operations they replace',
                      operator_table(results['operators'])]
        if results['costs']:
            parts += [f'{h} Operators the FLOP counter cannot see', uncounted_table(results['costs'])]
    return '\n\n'.join(p for p in parts if p) + '\n'


def write_report(folder: Path) -> Dict[str, Path]:
    """CSV files, ``tables.md`` and the plots of ``<folder>/results.json``; returns the files written."""
    folder = Path(folder)
    results = load_results(folder)
    written: Dict[str, Path] = {}
    for key in ('costs', 'operators', 'accuracy', 'published'):
        rows = [{k: v for k, v in r.items() if k != 'curve'} for r in results[key]]
        if rows:
            written[f'{key}.csv'] = folder / f'{key}.csv'
            _csv(written[f'{key}.csv'], rows)
    curves = [dict(task=r['task'], model=r['model'], **p) for r in results['accuracy'] for p in r.get('curve', [])]
    if curves:
        written['curves.csv'] = folder / 'curves.csv'
        _csv(written['curves.csv'], curves)
    written['tables.md'] = folder / 'tables.md'
    written['tables.md'].write_text('# Benchmark results\n\n' + tables_markdown(results, base=_in_repo(folder)))
    from .plots import write_plots
    written.update(write_plots(results, folder / 'plots'))
    return written


# --------------------------------------------------------------------------------------------- READMEs
def replace_between_markers(text: str, block: str) -> Tuple[str, bool]:
    """``text`` with everything between :data:`START` and :data:`END` replaced by ``block``; False if no markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return text, False
    return text[:start + len(START)] + '\n' + block.strip() + '\n' + text[end:], True


def readme_blocks(results: Dict[str, Any], folder: Path, root: Path = REPO) -> Dict[Path, str]:
    """The generated block of ``<root>/README.md`` and of each ``<root>/configs/<family>/README.md``."""
    rel = _in_repo(folder)
    source = (f'*Generated by `python tools/benchmark.py report {rel} --update-readmes` from [{rel}]({rel}) '
              '— do not edit by hand.*')
    blocks = {root / 'README.md': '### Measured side by side (`tools/benchmark.py`)\n\n' + source + '\n\n'
              + readme_summary(results)}
    for family in FAMILIES:
        readme = root / 'configs' / family / 'README.md'
        link = Path('..', '..', rel)
        fam_source = (f'*Generated by `python tools/benchmark.py report {rel} --update-readmes` from '
                      f'[{rel}]({link}) — do not edit by hand.*')
        blocks[readme] = ('### Benchmark (`tools/benchmark.py`, measured)\n\n' + fam_source + '\n\n'
                          + tables_markdown(results, families=(family, ), base=Path('configs', family), level=4))
    return blocks


def readme_summary(results: Dict[str, Any]) -> str:
    """The README's tables: one row per protocol model (fp32) with the ratios to its task's baseline and the
    accuracy after the budget; one row per full-size config with our params / FLOPs beside the paper's numbers."""
    acc = {(r['task'], r['model']): r for r in results['accuracy']}
    body = []
    for r in results['costs']:
        if r.get('precision', 'fp32') != 'fp32':
            continue
        a = acc.get((r['task'], r['model']))
        accuracy = '-' if a is None else ('failed' if a.get('error') else
                                          f'{a["primary"]} {fmt(a["value"])} ({fmt(a["iters"])} it)')
        ratio = lambda key: '-' if r.get(key) is None else f'{r[key]:.2f}×'
        size = f'{r["input_size"][0]}×{r["input_size"][1]}'
        body.append([r['task'], f'**{r["model"]}**' if r['is_baseline'] else r['model'], size,
                     fmt(_m(r['params']), 1), fmt(_g(r['flops']), 2), ratio('latency_ms_ratio'),
                     ratio('train_step_ms_ratio'), ratio('train_mem_mib_ratio'), accuracy])
    meta = results['meta']
    acc_note = '' if results['accuracy'] else f' Accuracy: {meta.get("accuracy_status", "not run")}.'
    parts = [meta_lines(meta) + acc_note + ' Baselines in bold; ratios are the model\'s cost over its task\'s '
             'baseline measured in the same run (< 1: cheaper). All tables, the operator scaling and the plots: '
             '[docs/benchmark.md](docs/benchmark.md).',
             markdown_table(['task', 'model (toy protocol)', 'input', 'params (M)', 'GFLOPs', 'latency',
                             'train step', 'train memory', 'accuracy after the budget'], body)]
    full = []
    for r in results['published']:
        p = r['published']
        paper = ', '.join(f'{label} {fmt(p[k])}' for k, label in PUBLISHED_COLUMNS if p.get(k) is not None)
        full.append([r['model'], f'{r["shape"][0]}×{r["shape"][1]}',
                     f'{fmt(_m(r.get("params")))} / {fmt(p.get("params_M"))}',
                     f'{fmt(_g(r.get("flops")))} / {fmt(p.get("GFLOPs"))}', paper or '-', r['source']])
    if full:
        parts += ['Full-size configs: our parameters and FLOPs (one multiply-add = one FLOP, at the stated input) / '
                  'the paper\'s, and the paper\'s accuracy:',
                  markdown_table(['model', 'input', 'params (M) ours / paper', 'GFLOPs ours / paper',
                                  'published accuracy', 'source'], full)]
    return '\n\n'.join(parts)


def update_readmes(folder: Path, root: Path = REPO, log=print) -> Dict[str, List[Path]]:
    """Write the generated blocks between the markers of the READMEs under ``root`` (default: this checkout);
    returns ``{'updated': [...], 'no_markers': [...]}``."""
    results = load_results(folder)
    out: Dict[str, List[Path]] = dict(updated=[], no_markers=[])
    for path, block in readme_blocks(results, folder, root).items():
        if not path.is_file():
            continue
        text, found = replace_between_markers(path.read_text(), block)
        if not found:
            out['no_markers'].append(path)
            log(f'  {path.relative_to(root)}: no {START} ... {END} markers, left alone')
            continue
        path.write_text(text)
        out['updated'].append(path)
        log(f'  {path.relative_to(root)}: tables regenerated')
    return out
