"""tools/benchmark/clusterformer_recursion_cost.py runs both recursion depths in one interleaved run."""
from conftest import load_tool


def test_recursion_cost_script_smoke(capsys):
    tool = load_tool('tools/benchmark/clusterformer_recursion_cost.py')
    mini = ('{"layers": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16], "mlp_ratios": 1, "heads": 2, "head_dim": 4, '
            '"num_centers": 2, "windows": 1, "window_size": 4, "num_iters": 1}')
    res = tool.main(['--arch', mini, '--size', '32', '--batch', '1', '--steps', '1', '--warmup', '0'])
    assert res['median_s_T1'] > 0 and res['median_s_T3'] > 0
    assert 'T=3 vs T=1' in capsys.readouterr().out
