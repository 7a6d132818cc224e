"""How much memory ``roiops crop`` may still use, to refuse crop sizes that cannot fit."""
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# (limit file, usage file) of cgroup v2 and of v1's memory controller
CGROUP_V2_FILES = ("memory.max", "memory.current")
CGROUP_V1_FILES = ("memory.limit_in_bytes", "memory.usage_in_bytes")
NO_LIMIT = 2 ** 60  # v1 writes "no limit" as a number near 2**63


def available():
    """Bytes this process can still allocate, or None when unknown.

    On Linux the smallest of the memory the system has available (``MemAvailable``) and the
    room left under the memory limits of this process's cgroup and its ancestors (containers,
    systemd units); elsewhere the physical memory.
    """
    known = [value for value in (_mem_available(), _cgroup_room()) if value is not None]
    return min(known) if known else _physical_memory()


def describe(count):
    """``123,456,789 bytes (117.7 MiB)``."""
    value, unit = float(count), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    scaled = "" if unit == "bytes" else f" ({value:.1f} {unit})"
    return f"{count:,} bytes{scaled}"


def _mem_available():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room():
    rooms = []
    for folder, (limit_name, usage_name) in _cgroup_folders():
        limit, usage = _read_int(folder / limit_name), _read_int(folder / usage_name)
        if limit is not None and usage is not None and limit < NO_LIMIT:
            rooms.append(max(0, limit - usage))
    return min(rooms, default=None)


def _cgroup_folders():
    """``(folder, files)`` for this process's memory cgroup and each of its ancestors."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if not controllers:
            root, files = CGROUP_ROOT, CGROUP_V2_FILES
        elif "memory" in controllers.split(","):
            root, files = CGROUP_ROOT / "memory", CGROUP_V1_FILES
        else:
            continue
        folder = root / path.lstrip("/")
        while folder.is_relative_to(root):
            yield folder, files
            if folder == root:
                break
            folder = folder.parent


def _read_int(path):
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None  # no such file, or "max" (cgroup v2 without a limit)


def _physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
