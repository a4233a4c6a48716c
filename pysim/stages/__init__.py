"""One module per pipeline stage, named after its entry point (bin/pysim-<stage>).

Each module holds the one function `run_<stage>` its entry point calls, taking plain values
(paths, ints, a resolved device string, byte counts); the rest of pysim is its implementation.
Nothing here parses command lines: that is bin/* with pysim.cli.
"""
