"""mmcluster: clustering-view vision models for OpenMMLab (mmdet / mmseg / mmpretrain)."""
import os
import os.path as osp
import platform
import shutil
import sys
import warnings

from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open('mmcluster/version.py', encoding='utf-8') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def add_mim_extension() -> None:
    """Put configs/, tools/ and model-index.yml into ``mmcluster/.mim`` (as mmdet's setup.py does), so that
    ``mim search mmcluster`` lists the models and ``mim train mmcluster CONFIG`` finds the configs.

    An editable install (``pip install -e .``) links them (a copy on Windows, where links may fail); building a
    wheel or an sdist copies them.
    """
    if any(cmd in sys.argv for cmd in ('develop', 'editable_wheel')):
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'build', 'install')):
        mode = 'copy'
    else:
        return

    repo_path = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(repo_path, 'mmcluster', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for filename in ('tools', 'configs', 'model-index.yml'):
        src_path = osp.join(repo_path, filename)
        if not osp.exists(src_path):
            continue
        tar_path = osp.join(mim_path, filename)
        if osp.isfile(tar_path) or osp.islink(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)
        if mode == 'symlink':
            os.symlink(osp.relpath(src_path, osp.dirname(tar_path)), tar_path)
        elif osp.isfile(src_path):
            shutil.copyfile(src_path, tar_path)
        elif osp.isdir(src_path):
            shutil.copytree(src_path, tar_path)
        else:
            warnings.warn(f'Cannot copy {src_path}.')


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmcluster',
        version=read_version(),
        description='Clustering-based vision backbones, necks and heads for OpenMMLab',
        long_description=open('README.md', encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        keywords='computer vision, clustering, image classification, object detection, segmentation',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'tests.*')),
        include_package_data=True,
        python_requires='>=3.8',
        # The OpenMMLab stack is pinned in requirements/ and installed by tools/setup/setup_env.sh:
        # mmcv must be built from source, which a plain dependency resolve cannot do.
        install_requires=['mmengine==0.10.7'],
        license='Apache License 2.0',
        zip_safe=False,
    )
