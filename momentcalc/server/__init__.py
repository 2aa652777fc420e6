"""The warm server: a process that keeps numba, scipy and the kernels loaded and forks a child per command.

A service below the CLI: it runs commands through the runner the console script hands it
(momentcalc.cli.command_runner, momentcalc_launch.serve_here), so it imports nothing of cli/. Its client side and
addresses are in momentcalc_client.py (outside the package: the standard library only).
- loop.py: the server's process (lock, warm-up, reading requests without blocking, forking);
- child.py: a served command's process (what it takes on from its client, and what it sends back);
- registry.py: which servers run (their lock files), stopping them.
POSIX only (fcntl, fork). This __init__ imports nothing: `momentcalc server status` reads the registry without
loading numba (loop.py and child.py import the Monte Carlo driver).
"""
