"""Ship manifests/ (a top-level folder, as the design card fixes it) as `catalog.builtin_manifests`."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["catalog", "catalog.*", "toolkit", "toolkit.*"]) + ["catalog.builtin_manifests"],
    package_dir={"catalog.builtin_manifests": "manifests"},
    package_data={"catalog.builtin_manifests": ["*.json"]},
)
