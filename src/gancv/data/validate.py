"""``gancv data check``: decode every file a spec would use and report what is wrong.

Loading skips bad files with one warning; this is where the user sees each of them with its
reason, and every conversion that was applied (CMYK, 16-bit, palette, alpha...). Nothing is
downloaded: a missing torchvision set is reported as missing.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from .core import DATASETS, LoadOptions, is_dir, load_with, parse_spec
from .folders import scan_folder
from .images import decode_all, decode_image


@dataclass
class DataReport:
    """What ``check_data`` found. ``problems``/``converted`` hold ``(path, reason or note)``."""

    spec: str
    total: int = 0  # files looked at (items, for sets that are not folders of files)
    usable: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)
    unit: str = "files"  # what `total` counts: "files" for folders, "items" for packaged sets

    @property
    def ok(self) -> bool:
        """True when training could start: at least one usable item."""
        return self.usable > 0

    def lines(self) -> list[str]:
        """Human-readable report: a summary line, then one line per problem and per conversion."""
        out = [
            f"{self.spec}: {self.total} {self.unit} looked at, {self.usable} usable, "
            f"{len(self.problems)} with problems, {len(self.converted)} converted"
        ]
        out += [f"  problem    {path}: {reason}" for path, reason in self.problems]
        out += [f"  converted  {path}: {note}" for path, note in self.converted]
        if not self.ok:
            out.append("  nothing usable: training would stop; fix or replace the files listed above")
        elif self.problems:
            out.append(f"  training skips the {len(self.problems)} file(s) with problems")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict:
        """JSON-ready form (``gancv data check --json``)."""
        data = asdict(self)
        data["problems"] = [list(p) for p in self.problems]
        data["converted"] = [list(c) for c in self.converted]
        data["ok"] = self.ok
        return data


def check_data(spec: str, data_root: str | os.PathLike = "data") -> DataReport:
    """Check every file behind ``spec``; raises GancvError only if the spec itself is unusable
    (unknown name, missing folder, no image files at all, torchvision files absent).

    ``spec`` may also be a bare directory path, read as ``folder:PATH``.

    A folder whose files are all bad returns a report with ``usable == 0`` (``ok`` is False)
    so that each problem can be listed.
    """
    if isinstance(spec, str) and spec.partition(":")[0] not in DATASETS and is_dir(spec):
        # why: the skip warnings suggest `gancv data check PATH`; a bare directory means folder:PATH.
        spec = f"folder:{spec}"
    prefix, arg = parse_spec(spec)
    if prefix != "folder":
        bundle = load_with(spec, LoadOptions(data_root=data_root, download=False))
        return DataReport(spec, total=len(bundle), usable=len(bundle), unit="items")
    scan = scan_folder(arg, spec)
    report = DataReport(spec, total=len(scan.files) + len(scan.ignored))

    # why only the notes: a large folder's decoded images must not pile up in memory
    results = decode_all(lambda path: decode_image(path)[1], scan.files)
    for path, (notes, problem) in zip(scan.files, results):
        if problem is not None:
            report.problems.append((str(path), problem))
            continue
        report.usable += 1
        report.converted += [(str(path), note) for note in notes]
    report.problems += [
        (str(p), f"lies directly in {scan.root} beside class sub-folders, so it is ignored; move it into a class folder")
        for p in scan.ignored
    ]
    return report
