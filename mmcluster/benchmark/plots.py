"""PNG plots of a results folder (matplotlib, Agg backend: no display needed).

* ``operators.png``: per clustering operation, time and extra peak memory of each form against the number of
  image pixels (log-log), so the growth with resolution shows; skipped sizes are absent.
* ``accuracy_vs_time.png``: per task, each model's primary metric at every evaluation against the training time
  it had spent (the learning curves of the protocol).
* ``pareto.png``: per task, the primary metric after the budget against inference latency; the models on the
  Pareto front (no other model both faster and more accurate) are joined.
"""
from pathlib import Path
from typing import Any, Dict, List

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def _panels(n: int, height: float = 3.4):
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis('off')
    return fig, list(axes.flat)[:n]


def plot_operators(operators: List[Dict[str, Any]], path: Path) -> Path:
    """Time (solid) and memory (dashed, right axis) against pixels, one panel per operation."""
    ops = list(dict.fromkeys(r['op'] for r in operators))
    fig, axes = _panels(len(ops))
    for ax, op in zip(axes, ops):
        mem_ax = ax.twinx()
        for i, form in enumerate(dict.fromkeys(r['form'] for r in operators if r['op'] == op)):
            pts = [r for r in operators if r['op'] == op and r['form'] == form and r['status'] == 'ok']
            x = [r['height'] * r['width'] for r in pts]
            colour = f'C{i}'
            ax.plot(x, [r['time_ms'] for r in pts], 'o-', color=colour, label=f'{form} (time)')
            mem = [(xx, r['mem_mib']) for xx, r in zip(x, pts) if r['mem_mib'] and r['mem_mib'] > 0]
            if mem:
                mem_ax.plot(*zip(*mem), 's--', color=colour, alpha=0.5, label=f'{form} (memory)')
        ax.set(xscale='log', yscale='log', title=op, xlabel='image pixels (H×W)', ylabel='time per call (ms)')
        mem_ax.set_yscale('log')
        mem_ax.set_ylabel('extra peak memory (MiB)')
        ax.legend(fontsize=7, loc='upper left')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy_vs_time(accuracy: List[Dict[str, Any]], path: Path) -> Path:
    """Learning curves: primary metric against training seconds, one panel per task."""
    tasks = list(dict.fromkeys(r['task'] for r in accuracy))
    fig, axes = _panels(len(tasks))
    for ax, task in zip(axes, tasks):
        for r in (r for r in accuracy if r['task'] == task and r['curve']):
            pts = [(p['train_s'] / 60, p[r['primary']]) for p in r['curve'] if p.get(r['primary']) is not None]
            if pts:
                ax.plot(*zip(*pts), 'o-' if not r['is_baseline'] else 'k^-', label=r['model'])
        primary = next((r['primary'] for r in accuracy if r['task'] == task), '')
        ax.set(title=task, xlabel='training time (min)', ylabel=primary)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pareto(accuracy: List[Dict[str, Any]], costs: List[Dict[str, Any]], path: Path) -> Path:
    """Primary metric after the budget against batch-1 latency; the Pareto front joined."""
    latency = {(r['task'], r['model']): r['latency_ms'] for r in costs if r.get('precision', 'fp32') == 'fp32'}
    tasks = list(dict.fromkeys(r['task'] for r in accuracy))
    fig, axes = _panels(len(tasks))
    for ax, task in zip(axes, tasks):
        pts = [(latency.get((task, r['model'])), r['value'], r['model'], r['is_baseline']) for r in accuracy
               if r['task'] == task and r['value'] is not None and latency.get((task, r['model']))]
        for lat, value, model, is_base in pts:
            ax.plot(lat, value, 'k^' if is_base else 'o')
            ax.annotate(model, (lat, value), fontsize=7, xytext=(3, 3), textcoords='offset points')
        front, best = [], float('-inf')
        for lat, value, *_ in sorted(pts, key=lambda p: (p[0], -p[1])):
            if value > best:
                front.append((lat, value))
                best = value
        if len(front) > 1:
            ax.plot(*zip(*front), '-', color='grey', alpha=0.6)
        primary = next((r['primary'] for r in accuracy if r['task'] == task), '')
        ax.set(title=task, xlabel='inference latency, batch 1 (ms)', ylabel=f'{primary} after the budget')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(results: Dict[str, Any], folder: Path) -> Dict[str, Path]:
    """The plots that the measured parts allow; returns ``{file name: path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    if results['operators']:
        written['plots/operators.png'] = plot_operators(results['operators'], folder / 'operators.png')
    if any(r['curve'] for r in results['accuracy']):
        written['plots/accuracy_vs_time.png'] = plot_accuracy_vs_time(results['accuracy'],
                                                                      folder / 'accuracy_vs_time.png')
    if results['accuracy'] and results['costs']:
        written['plots/pareto.png'] = plot_pareto(results['accuracy'], results['costs'], folder / 'pareto.png')
    return written
