"""Package layout for setuptools (the metadata is in pyproject.toml).

The wheel holds the code packages and, as package data, the Hydra configs (`configs/` installed
as `editing_app/config_files/`) and the shipped demo assets (`assets/` as
`demo_world/asset_files/`); `editing_app.configs.CONFIG_DIR` and
`demo_world.asset_paths.ASSETS_DIR` read those copies when they exist and the checkout's
folders otherwise (an editable install maps only the code packages).
"""

from setuptools import find_packages, setup

CODE = ["editing", "editing_app", "demo_world", "lightning_modules", "datamodules", "callbacks"]
DATA = {"editing_app.config_files": "configs", "demo_world.asset_files": "assets"}

setup(
    packages=find_packages(include=[name for c in CODE for name in (c, f"{c}.*")]) + list(DATA),
    package_dir=DATA,
    package_data={package: ["**/*"] for package in DATA},
)
