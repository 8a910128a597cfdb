"""``lookup-index``: keygen, generate, build, info, verify, check, recall, key import|destroy.

Every failure is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lookup_index.builder import CHUNK_ROWS, BuildOptions, BuildSummary, build_index
from lookup_index.categories import CATEGORIES, DEFAULT_INCIDENT_CATEGORIES, UnknownCategory
from lookup_index.csv_input import parse_column_map
from lookup_index.exceptions import InvalidIdentity, LookupIndexError
from lookup_index.key_backend import KeyBackend, KeyMaterial
from lookup_index.key_cli import (
    add_key_commands,
    add_key_source_options,
    add_token_options,
    keygen_in_token,
    open_key,
)
from lookup_index.normalise import canonical_identity
from lookup_index.pepper import generate_pepper_file
from lookup_index.profiles import DEFAULT_PROFILE, PROFILES
from lookup_index.reader import IndexReader
from lookup_index.sender_keys import generate_sender_keys, load_sender_public_key
from lookup_index.signing import generate_signing_key, load_public_key, load_signing_key

if TYPE_CHECKING:
    from lookup_index.cluster import ClusterOptions

EXIT_ERROR = 1
#: Modules of the ``[build]`` extra, which an API host does not install.
BUILD_EXTRA_MODULES = frozenset({"faker", "rich", "dask", "distributed"})
EXIT_INVALID_INPUT = 2
EXIT_TARGETS_MISSED = 3


def _keygen(args: argparse.Namespace) -> int:
    if args.pkcs11:
        return keygen_in_token(args)
    if args.out is None:
        raise LookupIndexError("keygen needs --out (or --pkcs11 and the token options)")
    if args.signing and args.sender:
        raise LookupIndexError("keygen takes --signing or --sender, not both")
    if args.sender:
        private, public = generate_sender_keys(args.out)
        print(
            f"wrote the send-worker's key {private} (mode 0600; for the send-worker only, "
            f"SELFCHECK_SENDER_KEY_FILE) and its public key {public} "
            "(for build --sender-public-key)"
        )
        return 0
    if args.signing:
        private, public = generate_signing_key(args.out)
        print(
            f"wrote the index signing key {private} (mode 0600; keep it on the build machine) "
            f"and its public key {public} (for the API hosts)"
        )
        return 0
    generate_pepper_file(args.out)
    print(f"wrote a new 32-byte key to {args.out} (mode 0600); keep it apart from the index")
    return 0


def _generate(args: argparse.Namespace) -> int:
    # Imported here: Faker takes ~0.2 s to load, which `check` and `info` need not pay.
    from lookup_index.generator import generate

    summary = generate(
        args.rows,
        args.seed,
        args.out,
        args.probes,
        args.probe_count,
        args.variants,
        args.variant_records,
    )
    print(
        f"wrote {summary.rows} rows to {args.out} ({summary.invalid_rows} invalid, "
        f"{summary.children} children under a parent's NIR, {summary.usage_names} usage names)"
        + (f"; {summary.probes} probes to {args.probes}" if args.probes else "")
        + (f"; {summary.typings} typings to {args.variants}" if args.variants else "")
    )
    return 0


def _progress_bar(
    enabled: bool, total_bytes: int
) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    if not enabled:
        return (lambda rows, done: None), (lambda: None)
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("hashing"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rows]:,} rows"),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=True,
    )
    task = progress.add_task("build", total=max(total_bytes, 1), rows=0, rate=0.0)
    progress.start()

    def update(rows: int, done: int) -> None:
        elapsed = progress.tasks[0].elapsed or 0.0
        progress.update(task, completed=done, rows=rows, rate=rows / elapsed if elapsed else 0.0)

    return update, progress.stop


def _print_summary(summary: BuildSummary, out: Path, rejects: Path) -> None:
    data = summary.as_dict()
    print(f"built {out}")
    for key, value in data.items():
        print(f"  {key}: {value}")
    rejected = sum(summary.rejected.values())
    print(
        f"  rejects: {rejected} of {summary.rows_read} rows ({summary.rejected_percent:.2f}%)"
        + (f": {summary.rejects_by_reason()}" if rejected else "")
    )
    print(f"  rejects report: {rejects}")


def _like(path: Path | None, pepper: KeyMaterial, profile: str | None) -> tuple[bytes | None, str]:
    """Salt and profile of ``--like``'s index (incidents sharing a params id), or a fresh salt."""
    if path is None:
        return None, profile or DEFAULT_PROFILE.name
    with IndexReader.open(path, verify_checksum=False) as reader:
        reader.check_pepper(pepper)
        header = reader.header
    if profile is not None and profile != header.profile.name:
        raise LookupIndexError(f"--profile {profile} differs from --like's {header.profile.name}")
    if header.profile.name not in PROFILES or PROFILES[header.profile.name] != header.profile:
        raise LookupIndexError("--like's index uses Argon2 parameters no profile matches")
    return header.salt, header.profile.name


def _cluster(args: argparse.Namespace) -> ClusterOptions | None:
    if args.scheduler is None and args.scheduler_file is None:
        return None
    try:
        from lookup_index.cluster import ClusterOptions
    except ImportError:
        raise LookupIndexError(
            "--scheduler needs dask and distributed: pip install 'patient-breach-selfcheck[build]'"
        ) from None

    def announce(link: str | None) -> None:
        if link is not None and not args.quiet:
            print(f"dask dashboard: {link}", file=sys.stderr)

    return ClusterOptions(
        scheduler=args.scheduler,
        scheduler_file=args.scheduler_file,
        tls_ca_file=args.tls_ca_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        announce=announce,
    )


def _build(args: argparse.Namespace) -> int:
    key = open_key(args)
    try:
        return _build_with(args, key)
    finally:
        key.close()


def _build_with(args: argparse.Namespace, key: KeyBackend) -> int:
    salt, profile = _like(args.like, key, args.profile)
    try:
        columns = parse_column_map(args.column or [])
        categories = [c.strip() for c in args.categories.split(",") if c.strip()]
        unknown = [c for c in categories if c not in CATEGORIES]
        if unknown:
            raise UnknownCategory(unknown[0])
    except UnknownCategory as exc:
        raise LookupIndexError(
            f"unknown category {exc}; choose from {', '.join(CATEGORIES)}"
        ) from None
    options = BuildOptions(
        input=args.input,
        out=args.out,
        pepper=key,
        profile=PROFILES[profile],
        workers=args.workers,
        incident_id=args.incident,
        incident_label=args.incident_label,
        categories=categories,
        columns=columns,
        encoding=args.encoding,
        work_dir=args.work_dir,
        chunk_rows=args.chunk_rows,
        salt=salt,
        cluster=_cluster(args),
        signing_key=None if args.signing_key is None else load_signing_key(args.signing_key),
        max_reject_rate=args.max_reject_rate,
        sender_public_key=None
        if args.sender_public_key is None
        else load_sender_public_key(args.sender_public_key),
    )
    size = args.input.stat().st_size if args.input.is_file() else 0
    update, stop = _progress_bar(sys.stderr.isatty() and not args.quiet, size)
    try:
        summary = build_index(options, update)
    finally:
        stop()
    _print_summary(summary, args.out, options.rejects_path)
    return 0


def _info(args: argparse.Namespace) -> int:
    with IndexReader.open(args.index, verify_checksum=False) as reader:
        print(json.dumps(reader.info(), indent=2))
    return 0


def _verify(args: argparse.Namespace) -> int:
    with IndexReader.open(args.index, verify_checksum=True) as reader:
        key = open_key(args)
        try:
            reader.check_pepper(key)
        finally:
            key.close()
        checked = "checksum and key-check"
        if args.public_key is not None:
            reader.verify_signature(load_public_key(args.public_key))
            checked = "checksum, signature and key-check"
        print(f"ok: {reader.header.count} keys, {checked} verified")
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        identity = canonical_identity(args.nir, args.birth_date, args.last_name)
    except InvalidIdentity as exc:
        print(exc.reason, file=sys.stderr)
        return EXIT_INVALID_INPUT
    key = open_key(args)
    try:
        with IndexReader.open(args.index, verify_checksum=False) as reader:
            result = reader.lookup(reader.hasher(key).digest(identity.canonical()))
    finally:
        key.close()
    print(f"affected {','.join(result.categories)}" if result.found else "not_found")
    return 0


def _recall(args: argparse.Namespace) -> int:
    from lookup_index.recall import format_report, measure_recall

    key = open_key(args)
    try:
        report = measure_recall(args.index, key, args.variants)
    finally:
        key.close()
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report))
    failures = report.failures()
    if args.enforce_targets and failures:
        print("lookup-index: recall targets missed: " + "; ".join(failures), file=sys.stderr)
        return EXIT_TARGETS_MISSED
    return 0


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("must be a percentage from 0 to 100")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lookup-index", description="Build and query the breach lookup index."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("keygen", help="create a new pepper (a key file, or a key in an HSM)")
    p.add_argument("--out", type=Path, help="where to write the key file (must not exist)")
    p.add_argument(
        "--pkcs11", action="store_true", help="generate the key inside the token instead"
    )
    p.add_argument(
        "--signing",
        action="store_true",
        help="an index signing key pair instead: writes OUT.key and OUT.pub",
    )
    p.add_argument(
        "--sender",
        action="store_true",
        help="the send-worker's X25519 key pair instead: writes OUT.key and OUT.pub",
    )
    add_token_options(p)
    p.set_defaults(func=_keygen)

    p = sub.add_parser("generate", help="write a synthetic export and a probes file")
    p.add_argument("--rows", type=_non_negative, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="export CSV to write")
    p.add_argument("--probes", type=Path, help="probes CSV to write (queries + expected answers)")
    p.add_argument(
        "--probe-count", type=int, help="affected probes to draw (default: min(rows, 2000))"
    )
    p.add_argument(
        "--variants",
        type=Path,
        help="typings CSV to write: how patients type sampled records, and near misses",
    )
    p.add_argument(
        "--variant-records",
        type=_non_negative,
        help="records whose typings to write (default: min(rows, 2000))",
    )
    p.set_defaults(func=_generate)

    p = sub.add_parser("build", help="build an index from a practices' export")
    p.add_argument("--input", type=Path, required=True, help="CSV export (header row, , or ;)")
    add_key_source_options(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help=f"Argon2 profile (default: {DEFAULT_PROFILE.name})",
    )
    p.add_argument(
        "--workers", type=_non_negative, default=0, help="hashing processes (default: all cores)"
    )
    p.add_argument(
        "--signing-key",
        type=Path,
        help="sign the index with this Ed25519 key (NAME.key from keygen --signing)",
    )
    p.add_argument(
        "--sender-public-key",
        type=Path,
        help="seal each key's contact (email/mobile columns) to this key (NAME.pub from "
        "keygen --sender), for private delivery",
    )
    p.add_argument(
        "--like",
        type=Path,
        metavar="INDEX",
        help="reuse this index's salt and profile (another incident, same params id)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        help="checkpoint finished chunks here; a re-run resumes (wiped once the index is verified)",
    )
    p.add_argument("--chunk-rows", type=_positive, default=CHUNK_ROWS, help="rows per chunk/task")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler, tls://host:8786 (tcp:// on loopback)",
    )
    where.add_argument("--scheduler-file", type=Path, help="Dask scheduler file")
    p.add_argument("--tls-ca-file", type=Path, help="CA that signed the scheduler's certificate")
    p.add_argument("--tls-cert", type=Path, help="this client's certificate (mutual TLS)")
    p.add_argument("--tls-key", type=Path, help="this client's private key")
    p.add_argument("--incident", default="incident", help="incident id stored in the header")
    p.add_argument("--incident-label", default="", help="incident label shown to patients")
    p.add_argument(
        "--categories",
        default=",".join(DEFAULT_INCIDENT_CATEGORIES),
        help="comma-separated categories exposed for rows without a categories column "
        f"(vocabulary: {', '.join(CATEGORIES)})",
    )
    p.add_argument(
        "--column", action="append", metavar="NAME=HEADER", help="map a column, e.g. nir=NUM_SS"
    )
    p.add_argument(
        "--encoding", default="utf-8-sig", help="input encoding (default: UTF-8, BOM ok)"
    )
    p.add_argument(
        "--max-reject-rate",
        type=_percent,
        default=1.0,
        metavar="PERCENT",
        help="stop without an index when more rows than this are rejected (default: 1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_build)

    p = sub.add_parser("info", help="print an index header as JSON (no secrets)")
    p.add_argument("index", type=Path)
    p.set_defaults(func=_info)

    p = sub.add_parser("verify", help="verify an index's checksum, key and signature")
    p.add_argument("index", type=Path)
    add_key_source_options(p)
    p.add_argument(
        "--public-key",
        type=Path,
        help="the signer's public key (NAME.pub): refuse an unsigned or wrongly signed index",
    )
    p.set_defaults(func=_verify)

    p = sub.add_parser("check", help="look one identity up")
    p.add_argument("--index", type=Path, required=True)
    add_key_source_options(p)
    p.add_argument("--nir", required=True)
    p.add_argument("--birth-date", required=True, help="YYYY-MM-DD; 00 for an unknown day or month")
    p.add_argument("--last-name", required=True)
    p.set_defaults(func=_check)

    p = sub.add_parser("recall", help="measure recall and false matches on a typings file")
    p.add_argument("--index", type=Path, required=True)
    add_key_source_options(p)
    p.add_argument("--variants", type=Path, required=True, help="from generate --variants")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--enforce-targets",
        action="store_true",
        help="exit 3 when recall < 99.5%%, a kind < 98%% or any false match",
    )
    p.set_defaults(func=_recall)

    add_key_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except LookupIndexError as exc:
        print(f"lookup-index: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            "lookup-index: interrupted; no index was written (--work-dir keeps finished chunks)",
            file=sys.stderr,
        )
        return 130
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in BUILD_EXTRA_MODULES:
            raise
        print(
            f"lookup-index: error: this command needs the build tools ({missing}): "
            "pip install 'patient-breach-selfcheck[build]'",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except OSError as exc:
        print(f"lookup-index: error: {exc.strerror or exc.__class__.__name__}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
