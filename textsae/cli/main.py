"""The ``textsae`` command: argparse subcommands, one module per verb group.

User errors (:class:`textsae.errors.UserError`) become one line per problem on stderr and exit
code 2; the traceback appears only with ``--debug``.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from textsae import __version__
from textsae.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


class _UsageError(UserError):
    """A command-line usage problem found by argparse (unknown option, missing argument, bad value)."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors become one ``textsae: error:`` line (subcommand parsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see `{self.prog} --help`).")


def positive_int(text: str) -> int:
    """``argparse`` type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value}")
    return value


def add_model_trust_options(parser: argparse.ArgumentParser) -> None:
    """``--trust-remote-code`` and ``--allow-pickle``: opt-ins that only the command line can give a saved run."""
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let a hidden-states run's model execute code from its repository (a run directory cannot grant this)",
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="let a hidden-states run load pickle-only model weights (a run directory cannot grant this)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render ``--help`` in the docs)."""
    from textsae.cli import bench, config_cmds, encode, export, inspect, score, stages, sweep

    parser = _Parser(
        prog="textsae",
        description="Turn text into sparse codes: featurize a corpus (TF-IDF or transformer hidden states), train a sparse\n"
        "autoencoder, encode documents into sparse codes, compare how well codes and source features classify, and\n"
        "share the trained codebook.",
        epilog="examples:\n"
        "  textsae run recipes/quickstart.yaml\n"
        "  textsae run recipes/imdb_tfidf_topk.yaml data.path=../shared/data/imdb sae.k=64\n"
        "  textsae sweep recipes/quickstart.yaml sae.k=[8,32,128]\n"
        "  textsae show recipes/imdb_tfidf_topk.yaml\n"
        "  textsae encode runs/quickstart/<hash> my_docs.parquet --out codes/\n"
        "  textsae inspect runs/quickstart/<hash>\n"
        "  textsae score runs/quickstart/<hash> my_docs.parquet --out scores.parquet\n"
        "  textsae export runs/minilm_auto/<hash> --to sentence-transformers --out my-sparse-encoder\n"
        "  textsae push runs/quickstart/<hash> me/my-codebook\n"
        "  textsae ls\n\n"
        "Run `textsae COMMAND --help` for the options of one command.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"textsae {__version__}")
    # Accepted before the verb (`textsae --debug run ...`) and after it; SUPPRESS keeps a verb's parser from resetting
    # what was given before the verb.
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors; no progress bars")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks and debug logs"
    )
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="only warnings and errors; no progress bars",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (stages, sweep, encode, export, score, inspect, bench, config_cmds):
        module.add_parsers(subparsers, common, _Formatter)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as error:
        print(f"textsae: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    _configure_logging(debug=args.debug, quiet=args.quiet)
    return _run(args)


def console() -> int:
    """The ``textsae`` command and ``python -m textsae``: :func:`main`, then, in a torchrun job, the end of the process
    (:func:`textsae.distributed.end_job`). Code that calls :func:`main` itself keeps its process."""
    code = main()
    if "torch.distributed" in sys.modules:  # only then can a torchrun process group exist
        from textsae.distributed import end_job

        end_job(code)  # under torchrun: leaves the group and exits here
    return code


def _run(args: argparse.Namespace) -> int:
    """Run the chosen verb; its exit code, with user and environment errors turned into one line each."""
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # `textsae show ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit-time flush of stdout stays quiet
        return 0
    except UserError as error:
        if args.debug:
            raise
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"textsae: error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (OSError, MemoryError) as error:  # the environment, not textsae: a full disk, a read-only folder, ...
        if args.debug:
            raise
        print(f"textsae: error: {_environment_message(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:  # torch (CPU or CUDA) and pandas report a failed allocation in their own types
        if args.debug or not _is_out_of_memory(error):
            raise
        print(f"textsae: error: {_environment_message(MemoryError(str(error)))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("textsae: interrupted; re-run the same command to resume where it stopped.", file=sys.stderr)
        return EXIT_INTERRUPTED


_OS_ADVICE = {
    errno.EACCES: "choose a folder you may write to (run.dir=DIR, --out DIR) or fix its permissions",
    errno.EPERM: "choose a folder you may write to (run.dir=DIR, --out DIR) or fix its permissions",
    errno.EROFS: "the file system is read-only; choose another folder (run.dir=DIR, --out DIR)",
    errno.ENOSPC: "the disk is full; free some space or choose another folder, then re-run the same command to resume",
    errno.EDQUOT: "the disk quota is used up; free some space, then re-run the same command to resume",
    errno.EEXIST: "a file stands where a folder is expected; remove it or choose another path",
    errno.ENOTDIR: "a file stands where a folder is expected; remove it or choose another path",
    errno.EISDIR: "a folder stands where a file is expected; choose a file",
}


_ALLOCATION = re.compile(r"(?:tried to allocate|Tried to allocate) ([\d.]+ ?(?:bytes|[KMGT]i?B))")


def _is_out_of_memory(error: Exception) -> bool:
    text = str(error)
    return "can't allocate memory" in text or "out of memory" in text.lower()


def _environment_message(error: OSError | MemoryError) -> str:
    """One line for an error of the machine rather than of the input (a full disk, no permission, no memory)."""
    if isinstance(error, MemoryError):
        tried = _ALLOCATION.search(str(error))
        size = f" (an allocation of {tried.group(1)} failed)" if tried else ""
        return (
            f"out of memory{size}; use fewer documents (data.max_docs=N), smaller batches (train.batch_size, "
            "--batch-size), a smaller dictionary (sae.n_latents) or fewer features (featurizer.max_features)."
        )
    where = f": {error.filename}" if error.filename else ""
    advice = _OS_ADVICE.get(
        error.errno or -1, "check the path and re-run the same command; add --debug for the traceback"
    )
    return f"{error.strerror or type(error).__name__}{where}; {advice}."


def _configure_logging(*, debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("textsae: %(message)s"))
    root = logging.getLogger("textsae")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for noisy in ("datasets", "transformers", "huggingface_hub", "urllib3", "filelock", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
