"""Entry point: the Typer app, global options, and the one place errors become exit codes.

A :class:`~r1v_quant.errors.R1VError` is printed as one line on stderr and exits
with its code (2 for bad input); ``--debug`` shows the traceback instead.  Ctrl-C
exits 130 after the command's own cleanup has removed partial outputs.
"""

from __future__ import annotations

import sys

import typer

from .. import __version__
from ..errors import R1VError
from . import awq_cmd, demo_cmd, gguf_cmd, imatrix_cmd, inspect_cmd, reference_cmd, release_cmd, validate_cmd

app = typer.Typer(
    name="r1v-quant",
    help="Quantize and export Skywork-R1V vision-language models (InternViT + MLP projector + Qwen2): "
    "AWQ for vLLM/LMDeploy, GGUF for llama.cpp, validated against the BF16 reference. "
    "Checkpoints are read shard by shard, one layer at a time.",
    no_args_is_help=True,
    add_completion=False,
    # click's plain help layout: it wraps to the terminal (80 columns in a pipe) and keeps \b blocks whole,
    # where rich's panels squeeze the option help into a narrow column
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"r1v-quant {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    _state["debug"] = debug


app.command("demo-checkpoint")(demo_cmd.demo_checkpoint)
app.command("inspect")(inspect_cmd.inspect)
app.command("reference")(reference_cmd.reference)
app.command("awq")(awq_cmd.awq)
app.command("imatrix")(imatrix_cmd.imatrix)
app.command("gguf")(gguf_cmd.gguf)
app.command("release")(release_cmd.release)
app.command("verify")(release_cmd.verify)
app.command("validate")(validate_cmd.validate)


def _click_kind(e: BaseException) -> str | None:
    """"usage", "click" or "abort" for the exceptions of click, and of the copy of click that typer
    vendors from 0.25 on (other classes of the same names), by class name along the MRO."""
    names = {c.__name__ for c in type(e).__mro__}
    if "NoArgsIsHelpError" in names:
        return "help"
    if "UsageError" in names:
        return "usage"
    if "ClickException" in names:
        return "click"
    if "Abort" in names:
        return "abort"
    return None


def _usage(e: Exception) -> int:
    """One line naming the problem, then click's usual hint; exit 2."""
    ctx = getattr(e, "ctx", None)
    command = ctx.command_path if ctx is not None else "r1v-quant"
    print(f"error: {e.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
    print(f"Try '{command} --help' for help.", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    try:
        rc = app(args=argv, standalone_mode=False, prog_name="r1v-quant")
        if isinstance(rc, int):  # click returns (not raises) typer.Exit's code when not standalone
            return rc
    except R1VError as e:
        if _state["debug"]:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted (partial outputs were removed)", file=sys.stderr)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except SystemExit as e:
        return int(e.code or 0)
    except Exception as e:
        kind = _click_kind(e)
        if kind is None or _state["debug"]:
            raise
        if kind == "help":  # `r1v-quant` alone: the help was printed
            return 0
        if kind == "abort":
            print("error: aborted", file=sys.stderr)
            return 130
        if kind == "usage":
            return _usage(e)
        print(f"error: {e.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
