"""The key options and commands of ``lookup-index``: where the key is, and its life in an HSM.

``--key-backend file --key-file F`` (the default backend) or ``--key-backend pkcs11`` with
``--token-label``, ``--key-label`` and ``--pin-file`` (the PIN is read from a file, never
from the command line or the environment, where ``ps`` and ``/proc`` would show it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lookup_index.exceptions import KeyBackendError
from lookup_index.key_backend import FileKeyBackend, KeyBackend
from lookup_index.pepper import load_pepper
from lookup_index.pkcs11_backend import (
    SOFTHSM2_LIBRARY,
    Pkcs11Config,
    Pkcs11KeyBackend,
    destroy_key,
    generate_key,
    import_key,
    read_pin_file,
)

#: Debian's softhsm2 package; production passes its HSM's library with --pkcs11-library.
DEFAULT_PKCS11_LIBRARY = SOFTHSM2_LIBRARY
DEFAULT_KEY_LABEL = "selfcheck-pepper"


def add_token_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("PKCS#11 token (HSM)")
    group.add_argument(
        "--pkcs11-library",
        type=Path,
        default=DEFAULT_PKCS11_LIBRARY,
        help=f"the HSM's PKCS#11 library (default: {DEFAULT_PKCS11_LIBRARY}, SoftHSM2)",
    )
    group.add_argument("--token-label", help="label of the token holding the key")
    group.add_argument(
        "--key-label", default=DEFAULT_KEY_LABEL, help=f"default: {DEFAULT_KEY_LABEL}"
    )
    group.add_argument("--pin-file", type=Path, help="file holding the token's user PIN")


def add_key_source_options(parser: argparse.ArgumentParser) -> None:
    """``--key-file`` or ``--key-backend pkcs11`` with the token options."""
    parser.add_argument("--key-backend", choices=("file", "pkcs11"), default="file")
    parser.add_argument("--key-file", type=Path, help="the pepper file (backend file)")
    add_token_options(parser)


def token_config(args: argparse.Namespace) -> Pkcs11Config:
    if not args.token_label or args.pin_file is None:
        raise KeyBackendError("the pkcs11 key backend needs --token-label and --pin-file")
    return Pkcs11Config(
        library=args.pkcs11_library,
        token_label=args.token_label,
        key_label=args.key_label,
        pin=read_pin_file(args.pin_file),
    )


def open_key(args: argparse.Namespace) -> KeyBackend:
    """The key the command was pointed at; the caller closes it."""
    if args.key_backend == "pkcs11":
        return Pkcs11KeyBackend(token_config(args))
    if args.key_file is None:
        raise KeyBackendError("give --key-file (or --key-backend pkcs11 and its token options)")
    return FileKeyBackend(load_pepper(args.key_file))


def keygen_in_token(args: argparse.Namespace) -> int:
    config = token_config(args)
    generate_key(config)
    print(
        f"generated key {config.key_label!r} in token {config.token_label!r} "
        "(sensitive, never extractable); back it up with the HSM vendor's wrapped-key export"
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    config = token_config(args)
    import_key(config, load_pepper(args.key_file))
    print(
        f"imported {args.key_file} as key {config.key_label!r} in token "
        f"{config.token_label!r} (sensitive, never extractable); the same indexes now open "
        "with --key-backend pkcs11. Destroy the file and its copies once the token is "
        "backed up (docs/OPERATIONS.md)."
    )
    return 0


def _destroy(args: argparse.Namespace) -> int:
    if not args.yes:
        raise KeyBackendError(
            "key destroy makes every index built with this key useless, for good; "
            "add --yes to confirm"
        )
    config = token_config(args)
    count = destroy_key(config)
    print(
        f"destroyed {count} object(s) labelled {config.key_label!r} in token "
        f"{config.token_label!r}; now destroy every other copy (docs/OPERATIONS.md)"
    )
    return 0


def add_key_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``lookup-index key import|destroy``."""
    key = sub.add_parser("key", help="manage the key in an HSM (PKCS#11)")
    actions = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")

    p = actions.add_parser("import", help="put an existing pepper file into the token")
    p.add_argument("--key-file", type=Path, required=True, help="the pepper file to import")
    add_token_options(p)
    p.set_defaults(func=_import)

    p = actions.add_parser("destroy", help="destroy the key in the token (crypto-shredding)")
    add_token_options(p)
    p.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    p.set_defaults(func=_destroy)
