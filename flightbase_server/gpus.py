"""Find this machine's GPUs with NVML, or offer CPU "GPU slots" where there is none.

A CPU slot is an accounting unit, not hardware: with no GPU, the scheduler
still hands out N numbered slots so that everything can be used and tested.
Every API that shows GPUs says which kind they are (``kind: cpu-slot``).
"""

from __future__ import annotations

DEFAULT_CPU_SLOTS = 4


def detect_nvml() -> list[dict]:
    """The GPUs NVML reports, or [] where there is no driver or no GPU."""
    try:
        import pynvml
    except ImportError:  # pragma: no cover - pynvml is a dependency
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):
                name = name.decode()
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            found.append({"index": index, "kind": "gpu", "name": name, "memory_bytes": int(memory)})
        return found
    finally:
        pynvml.nvmlShutdown()


def utilisation(index: int) -> int | None:
    """Percent of time GPU ``index`` was busy over NVML's last sample period; None without NVML.

    The idle culler reads it: a notebook whose GPU computes is in use, even when
    no one types (a training loop in a background thread, say)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:
        return None
    finally:
        pynvml.nvmlShutdown()


def readings(indices) -> dict[int, dict]:
    """What NVML reads now of each GPU in ``indices``: ``{index: {"utilisation_percent",
    "memory_used_bytes", "memory_total_bytes"}}``; {} without NVML, and a GPU it cannot read
    is left out. The administrators' page shows them for every slot (one NVML session for all)."""
    indices = list(indices)
    if not indices:
        return {}
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return {}
    found = {}
    try:
        for index in indices:
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                found[index] = {"utilisation_percent": int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                                "memory_used_bytes": int(memory.used), "memory_total_bytes": int(memory.total)}
            except Exception:
                continue
        return found
    finally:
        pynvml.nvmlShutdown()


def cpu_slots(count: int) -> list[dict]:
    return [{"index": i, "kind": "cpu-slot", "name": f"CPU slot {i}", "memory_bytes": 0} for i in range(count)]


def inventory(spec: str, detected: list[dict] | None = None) -> list[dict]:
    """Resolve ``--gpus auto|N`` against what NVML found.

    ``auto``: every GPU found, or DEFAULT_CPU_SLOTS CPU slots where none is.
    ``N``: the first N GPUs (an error if fewer exist), or N CPU slots where none is.
    """
    found = detect_nvml() if detected is None else detected
    if spec == "auto":
        return found or cpu_slots(DEFAULT_CPU_SLOTS)
    try:
        count = int(spec)
    except ValueError:
        raise ValueError(f"--gpus: expected 'auto' or a whole number, got {spec!r}") from None
    if count < 0:
        raise ValueError("--gpus: must not be negative")
    if not found:
        return cpu_slots(count)
    if count > len(found):
        raise ValueError(f"--gpus: asked for {count} but this machine has {len(found)} GPUs")
    return found[:count]
