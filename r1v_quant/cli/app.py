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
from . import awq_cmd, demo_cmd, gguf_cmd, inspect_cmd, reference_cmd, release_cmd, validate_cmd

app = typer.Typer(
    name="r1v-quant",
    help="Quantize and export Skywork-R1V vision-language models (InternViT + MLP projector + Qwen2): "
    "AWQ for vLLM/LMDeploy, GGUF for llama.cpp, validated against the BF16 reference. "
    "Checkpoints are read shard by shard, one layer at a time.",
    no_args_is_help=True,
    add_completion=False,
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
app.command("gguf")(gguf_cmd.gguf)
app.command("release")(release_cmd.release)
app.command("verify")(release_cmd.verify)
app.command("validate")(validate_cmd.validate)


def main(argv: list[str] | None = None) -> int:
    try:
        rc = app(args=argv, standalone_mode=False)
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
    except SystemExit as e:  # click's own usage errors
        return int(e.code or 0)
    except Exception as e:  # click exceptions carry their own formatting
        import click

        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            print("error: aborted", file=sys.stderr)
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
