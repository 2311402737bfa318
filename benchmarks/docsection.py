"""Write a generated section into docs/benchmarks.md (or another doc) between HTML comment markers, leaving the
rest alone; read one back to check it is up to date."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """One line naming the machine, so numbers are never read without it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f} at start"
    return (f"{cpu}, {os.cpu_count()} logical CPUs{gpu}{load}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op threads")


def write_section(key: str, title: str, body: str, doc: Path = DOC) -> Path:
    """Replace (or append) the ``## title`` section delimited by ``<!-- key:start -->`` / ``<!-- key:end -->``."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}{section_block(title, body)}{end}\n"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\nNumbers and the commands that produced them.\n\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc


def read_section(key: str, doc: Path = DOC) -> str | None:
    """The text between ``<!-- key:start -->`` and ``<!-- key:end -->`` (heading included), or ``None``."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    text = doc.read_text() if doc.exists() else ""
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0]


def section_block(title: str, body: str) -> str:
    """What ``write_section`` puts between the markers."""
    return f"\n## {title}\n\n{body.strip()}\n"
