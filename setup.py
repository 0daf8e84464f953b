"""mmcluster: clustering-view vision models for OpenMMLab (mmdet / mmseg / mmpretrain)."""
from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open('mmcluster/version.py', encoding='utf-8') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmcluster',
    version=read_version(),
    description='Clustering-based vision backbones, necks and heads for OpenMMLab',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'tests.*')),
    include_package_data=True,
    python_requires='>=3.8',
    # The OpenMMLab stack is pinned in requirements/ and installed by tools/setup/setup_env.sh:
    # mmcv must be built from source, which a plain dependency resolve cannot do.
    install_requires=['mmengine==0.10.7'],
    license='Apache License 2.0',
    zip_safe=False,
)
