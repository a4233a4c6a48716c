"""The CLI layer of the bin/ entry points: one-line errors (exit code 2 for bad input, 1 for an
internal error; `--debug` on every entry point shows its traceback), logging, and the
shared options (device resolved and sizes parsed once, here). Only bin/* import this module;
the rest of pysim never imports it or click."""

from __future__ import annotations

import logging
import os
import sys
import traceback

import click

from pysim.errors import DiskFullError, InputError, is_disk_full
from pysim.ids import check_id  # noqa: F401 - the entry points' id check
from pysim.outputs import check_outputs  # noqa: F401 - the entry points' output check

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


DEBUG_FLAG = "--debug"


def _add_debug_option(command: click.Command) -> None:
    if not any(DEBUG_FLAG in p.opts for p in command.params):
        command.params.append(click.Option(
            [DEBUG_FLAG], is_flag=True, expose_value=False,
            help="Show the Python traceback of an internal error (and debug log lines)."))


def run(command: click.Command) -> None:
    """Run a click command; any bad input ends as one line on stderr and exit code 2, any other
    exception as one 'internal error' line and exit code 1 (with --debug: the traceback)."""
    prog = os.path.basename(sys.argv[0])
    debug = DEBUG_FLAG in sys.argv[1:sys.argv.index("--")] if "--" in sys.argv \
        else DEBUG_FLAG in sys.argv[1:]
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format=f"{prog}: %(levelname)s: %(message)s", stream=sys.stderr)
    _add_debug_option(command)
    try:
        command.main(prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
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
    except OSError as exc:
        if not is_disk_full(exc):
            _internal(prog, exc, debug)
        folder = os.path.dirname(os.path.abspath(exc.filename)) if exc.filename else os.getcwd()
        click.echo(f"{prog}: error: {DiskFullError(folder)}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:  # noqa: BLE001 - no traceback without --debug
        _internal(prog, exc, debug)
    sys.exit(0)


def _internal(prog: str, exc: BaseException, debug: bool) -> None:
    """One 'internal error' line and exit 1 (with --debug: the traceback)."""
    if debug:
        traceback.print_exc()
    detail = " ".join(str(exc).split())[:300]
    click.echo(f"{prog}: internal error: {type(exc).__name__}"
               f"{': ' + detail if detail else ''}; rerun with --debug for the traceback",
               err=True)
    sys.exit(EXIT_INTERNAL)


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


def _trust_hub_repos(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    from pysim.models.hub_trust import set_trusted  # no torch import

    set_trusted([value] if value else None)


def trust_hub_repos_option(func):
    """--trust-hub-repos owner/name[=sha256],...: the torch.hub repos whose code may run."""
    from pysim.models.hub_trust import STUDY_HUB_REPOS

    option = click.option(
        "--trust-hub-repos", default=None, expose_value=False, callback=_trust_hub_repos,
        help="Comma-separated torch.hub repos (owner/name, optionally =<sha256> of the cached "
             "copy to pin it) whose hubconf.py may run; no other hub repo runs. Default: the "
             f"study's {', '.join(STUDY_HUB_REPOS)}.")
    return option(func)
