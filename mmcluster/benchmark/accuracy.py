"""Accuracy after the protocol's training budget: one toy run per model, the same budget for every model.

Each protocol run is trained by :func:`mmcluster.benchmark.protocol.run_protocol` (``tools/train.py`` in a fresh
process through :func:`mmcluster.utils.toy_run.run_config`, the protocol's settings and training-time budget,
periodic validation) and evaluated by the toolkit's own evaluator of the config (mmpretrain ``Accuracy``, mmseg
``IoUMetric``, mmdet ``CocoMetric`` / ``CocoPanopticMetric``) on the validation split of the protocol's data.
The row keeps the metrics of the protocol (primary first), the iterations reached, and the learning curve: every
validation of the run at the training time it had spent by then (``ToyRun.val_curve``; for a run without it,
the sum of the logged iteration times up to the validated iteration).
"""
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from mmcluster.utils.toy_run import ToyRun

def display_value(key: str, value: Any) -> Any:
    """A metric as the tables show it: as the run recorded it (the toy runs' COCO AP is already in percent,
    like the papers': e.g. ``coco/bbox_mAP`` 1.0 beside ``coco/bbox_mAP_50`` 3.9 in the protocol's records)."""
    return value


def slug(text: str) -> str:
    """A file-name-safe form of a model name."""
    return re.sub(r'[^A-Za-z0-9._-]+', '_', text).strip('_')


def learning_curve(run: ToyRun, keys: Sequence[str]) -> List[Dict[str, Any]]:
    """``[{'iter', 'train_s', <key>: value, ...}]`` for every evaluation of ``run`` (metrics in display units)."""
    if run.val_curve:
        return [dict(iter=int(p.get('iter', 0)), train_s=float(p.get('train_s', 0.0)),
                     **{k: display_value(k, p[k]) for k in keys if k in p}) for p in run.val_curve]
    times = sorted((int(r['iter']), float(r['time'])) for r in run.curve if 'iter' in r and 'time' in r)
    points = []
    for record in run.evaluations:
        step = int(record.get('step', run.iters))
        point = dict(iter=step, train_s=sum(t for i, t in times if i <= step))
        point.update({k: display_value(k, record[k]) for k in keys if k in record})
        points.append(point)
    return points


def measure_accuracy(runs: Sequence[Any], *, mode: str, work_dir: Path, data: Optional[Path] = None,
                     timeout_factor: float = 4.0, log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Train every protocol run under the protocol of ``mode``, then read what it reached.

    Args:
        runs: protocol runs.
        mode: ``full`` or ``short`` (budget, data and schedule of :mod:`mmcluster.benchmark.protocol`).
        work_dir: runs go to ``<work_dir>/<task>/<model>``.
        data: the protocol's data root.
        timeout_factor: a run is killed after ``timeout_factor * budget`` + 10 minutes (start-up, validations).
        log: progress printer.

    Returns:
        Rows ``{task, model, family, config, is_baseline, metrics: {key: value}, primary, value, iters, wall_s,
        s_per_iter, curve, error}``.
    """
    from .measure import repo_relative
    from .protocol import budget_minutes, run_protocol
    minutes = budget_minutes(mode)
    rows = []
    for run in runs:
        log(f'  training {run.task} / {run.model} for {minutes:g} min ...')
        row = dict(task=run.task, model=run.model, family=run.family, config=repo_relative(run.config),
                   is_baseline=bool(run.is_baseline), primary=run.metrics[0] if run.metrics else None,
                   metrics={}, value=None, iters=None, wall_s=None, s_per_iter=None, curve=[], error=None,
                   minutes=minutes)
        try:
            toy = run_protocol(run, Path(work_dir) / run.task / slug(run.model), mode, data=data,
                               timeout=60.0 * (timeout_factor * minutes + 10.0))
        except Exception as exc:  # one failed run is reported, the others still train
            row['error'] = f'{type(exc).__name__}: {exc}'.splitlines()[0][:300]
            log(f'    failed: {row["error"]}')
            rows.append(row)
            continue
        row.update(metrics={k: display_value(k, toy.metrics.get(k)) for k in run.metrics}, iters=toy.iters,
                   wall_s=toy.wall_s, s_per_iter=toy.s_per_iter, curve=learning_curve(toy, run.metrics))
        row['value'] = row['metrics'].get(row['primary'])
        log(f'    {toy.iters} iterations, {row["primary"]} = {row["value"]}')
        rows.append(row)
    return rows


def read_protocol_records(folder: Path, runs: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]:
    """Accuracy rows from the per-run JSON records of ``python -m mmcluster.benchmark.protocol`` (e.g.
    ``docs/benchmark/protocol/``: :func:`mmcluster.benchmark.protocol.result_record`), instead of training again.

    Args:
        folder: the records' folder (``*.json``, one per run).
        runs: keep only the records of these protocol runs (same task and model), in their order.
    """
    import json
    records = []
    for path in sorted(Path(folder).glob('*.json')):
        record = json.loads(path.read_text())
        if not {'task', 'model', 'metrics', 'curve'} <= set(record):
            continue  # not a protocol record
        keys = list(record['metrics'])
        metrics = {k: display_value(k, v) for k, v in record['metrics'].items()}
        curve = [dict(iter=int(p.get('iter', 0)), train_s=float(p.get('train_s', 0.0)),
                      **{k: display_value(k, p[k]) for k in keys if k in p}) for p in record['curve']]
        records.append(dict(task=record['task'], model=record['model'], family=record.get('family'),
                            config=record.get('config'), is_baseline=bool(record.get('is_baseline')),
                            primary=keys[0] if keys else None, metrics=metrics,
                            value=metrics.get(keys[0]) if keys else None, iters=record.get('iters'),
                            wall_s=record.get('wall_s'), s_per_iter=None, curve=curve, error=None,
                            minutes=record.get('budget_cpu_minutes'), source=str(path.name)))
    if runs is None:
        return records
    by_key = {(r['task'], r['model']): r for r in records}
    return [by_key[(run.task, run.model)] for run in runs if (run.task, run.model) in by_key]
