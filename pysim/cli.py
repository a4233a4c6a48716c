"""The CLI layer of the bin/ entry points: one-line errors with exit code 2, logging, and the
shared options (device resolved and sizes parsed once, here). Only bin/* import this module;
the rest of pysim never imports it or click."""

from __future__ import annotations

import logging
import os
import sys

import click

from pysim.errors import InputError

EXIT_BAD_INPUT = 2


def run(command: click.Command) -> None:
    """Run a click command; any bad input ends as one line on stderr and exit code 2."""
    prog = os.path.basename(sys.argv[0])
    logging.basicConfig(level=logging.INFO, format=f"{prog}: %(levelname)s: %(message)s",
                        stream=sys.stderr)
    try:
        command.main(prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo(f"{prog}: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        message = " ".join(exc.format_message().split())
        click.echo(f"{prog}: error: {message}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except InputError as exc:
        message = " ".join(str(exc).split())
        click.echo(f"{prog}: error: {message}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(0)


def _resolve_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    return resolve_device(value)


def device_option(func):
    """--device auto|cpu|cuda, resolved once while parsing: the command gets 'cpu' or 'cuda'."""
    option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                          show_default=True, callback=_resolve_device,
                          help="Where to compute; auto picks CUDA if present.")
    return option(func)


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from pysim.similarity.memory import parse_size  # pysim.similarity imports torch

    return None if value is None else parse_size(value)


def size_option(name: str, help: str):
    """An option holding a size such as 1GB or 512MB, parsed once: the command gets bytes."""
    return click.option(name, default=None, callback=_parse_size, help=help)


def _use_weights_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:  # while parsing: before the command reads any cache variable
        from pysim.models.caches import use_weights_dir  # imports torch: only when asked

        use_weights_dir(value)


def weights_dir_option(func):
    """--weights-dir DIR (default $PYSIM_WEIGHTS_DIR): every weight cache in one folder."""
    option = click.option(
        "--weights-dir", type=click.Path(file_okay=False), envvar="PYSIM_WEIGHTS_DIR",
        expose_value=False, callback=_use_weights_dir,
        help="Folder of all weight caches (huggingface/, torch/, open_clip/ inside); default "
             "$PYSIM_WEIGHTS_DIR, else HF_HOME, TORCH_HOME, PYSIM_OPENCLIP_CACHE as set.")
    return option(func)


def resolve_device(device: str) -> str:
    """Map auto|cpu|cuda to a torch device string; asking for CUDA without one is bad input."""
    if device == "cpu":
        return device  # no torch import: the stage checks its inputs first
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was requested but torch sees no CUDA device")
    return device
