import os
import sys

from sweeps.cli import main

try:
    code = main()
except BrokenPipeError:  # the output was piped into a reader that stopped early (e.g. `| head`)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 0
sys.exit(code)
