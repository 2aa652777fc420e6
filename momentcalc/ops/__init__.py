"""How each op is computed: scalar functions, closed forms and quadrature hints.

One module per kind of op. Nothing here imports numba: the Monte Carlo
kernels compile these plain functions themselves.
"""
