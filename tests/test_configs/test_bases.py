"""configs/_base_ and the layout of configs/: the model bases copied from toolkit configs (mmdet / mmseg have no
model base for Mask2Former and Deformable DETR) equal the toolkits' models, every base parses, and no config
inherits from another model family's folder (families share only configs/_base_)."""
import ast
from pathlib import Path

import pytest
from conftest import REPO
from mmengine.config import Config

for toolkit in ('mmdet', 'mmseg', 'mmpretrain'):
    pytest.importorskip(f'{toolkit}.models')

CONFIGS = REPO / 'configs'
FAMILIES = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir() and p.name != '_base_')
ALL = sorted(p for p in CONFIGS.rglob('*.py'))


def _strip_scope(obj):
    if isinstance(obj, dict):
        return {k: _strip_scope(v) for k, v in obj.items() if k != '_scope_'}
    if isinstance(obj, (list, tuple)):
        return [_strip_scope(v) for v in obj]
    return obj


@pytest.mark.parametrize('ours, theirs', [
    ('models/mask2former_r50.py', 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'),
    ('models/mask2former_r50_mmseg.py', 'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py'),
    ('models/deformable-detr_r50.py', 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'),
])
def test_copied_model_bases_equal_the_toolkits(ours, theirs):
    from mmengine.hub import get_config
    mine = Config.fromfile(str(CONFIGS / '_base_' / ours)).to_dict()['model']
    assert _strip_scope(mine) == _strip_scope(get_config(theirs).to_dict()['model'])


def _local_bases(path: Path):
    """The files named by `_base_` in a config (toolkit `pkg::` bases left out)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '_base_' for t in node.targets):
            names = ast.literal_eval(node.value)
            for name in [names] if isinstance(names, str) else names:
                if '::' not in name:
                    yield (path.parent / name).resolve()


def test_configs_inherit_only_shared_or_own_bases():
    for path in ALL:
        family = path.relative_to(CONFIGS).parts[0]
        for base in _local_bases(path):
            assert base.exists(), f'{path}: missing base {base}'
            owner = base.relative_to(CONFIGS).parts[0]
            assert owner in ('_base_', family), f'{path} inherits {base} of another family'


@pytest.mark.parametrize('path', [p for p in ALL if '_base_' in p.parts], ids=lambda p: str(p.relative_to(CONFIGS)))
def test_bases_parse(path):
    """The families' configs are parsed and built by their own tests; the bases alone here."""
    Config.fromfile(str(path))


def test_model_index_lists_every_family_metafile_and_config():
    """model-index.yml (what `mim search mmcluster` reads) imports each folder's metafile.yml, whose models
    name existing configs, and every config of a folder with a metafile is listed in it."""
    import yaml
    imports = yaml.safe_load((REPO / 'model-index.yml').read_text())['Import']
    assert sorted(imports) == sorted(f'configs/{p.parent.name}/metafile.yml' for p in CONFIGS.glob('*/metafile.yml'))
    for metafile in imports:
        meta = yaml.safe_load((REPO / metafile).read_text())
        collections = {c['Name'] for c in meta['Collections']}
        listed = set()
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            assert (REPO / model['Config']).is_file(), model['Config']
            assert model['Name'] == Path(model['Config']).stem
            listed.add(model['Config'])
        folder = (REPO / metafile).parent
        assert listed == {str(p.relative_to(REPO)) for p in folder.glob('*.py')}, metafile


def test_mim_search_lists_every_model_of_an_installed_package(tmp_path):
    """A regular (non-editable) install ships configs and model-index.yml in ``mmcluster/.mim``, where
    ``mim search mmcluster`` finds them. (An editable install of pip >= 21.3 has no ``site-packages/mmcluster``
    directory, the place mim looks, so this is checked on a ``--target`` install; see docs/compatibility.md.)"""
    import os
    import subprocess
    import sys

    import yaml
    target = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-build-isolation',
                    '--target', str(target), str(REPO)], check=True, capture_output=True, timeout=600)
    assert (target / 'mmcluster' / '.mim' / 'model-index.yml').is_file()
    mim = Path(sys.executable).with_name('mim')
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([str(mim), 'search', 'mmcluster'], env=env, check=True, capture_output=True, text=True,
                         timeout=300).stdout
    listed = {line.split(':', 1)[1].strip() for line in out.splitlines() if line.startswith('config id:')}
    expected = {model['Name']
                for metafile in yaml.safe_load((REPO / 'model-index.yml').read_text())['Import']
                for model in yaml.safe_load((REPO / metafile).read_text())['Models']}
    assert listed == expected
