"""tools/benchmark/clustering_ops.py: every case runs in its tiny mode, and mmcluster's form equals the official
formulation re-expressed in the script (outputs and all gradients), so the timed pairs compute the same thing."""
from conftest import load_tool


def test_clustering_ops_tiny_forms_agree(capsys):
    tool = load_tool('tools/benchmark/clustering_ops.py')
    rows = tool.main(['--tiny'])
    assert {(r['case'], r['mode']) for r in rows} == {(c, m) for c in tool.CASES for m in ('forward', 'train')}
    for r in rows:
        assert r['equal'], f"{r['case']} {r['mode']}: relative difference {r['max_rel_diff']:.1e}"
        assert r['ours_ms'] > 0 and r['official_ms'] > 0
    out = capsys.readouterr().out
    assert '| operation | mode |' in out and 'official' in out
