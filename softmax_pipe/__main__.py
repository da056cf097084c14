"""``python -m softmax_pipe``: the same command line as ``softmax-pipe``."""

from softmax_pipe.cli import main

main()
