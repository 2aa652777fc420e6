"""Kernels compiled in one copy of the package load, without compiling, in a copy at another path.

Why in tests_long/: it compiles relu's Monte Carlo kernels into an empty folder in a process of its own, about 5 s
of CPU; tests_long/test_pip_install.py makes the same check through a real pip install, and
tests/test_install_kernels.py checks where the package caches its kernels and how the build hook places them.
"""

from test_install_kernels import kernels_compiled_in_one_copy_load_in_another_without_compiling as load_in_another


def test_kernels_compiled_in_one_copy_of_the_package_load_in_another_without_compiling(tmp_path):
    load_in_another(tmp_path)
