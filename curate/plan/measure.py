"""What a run spent, measured: wall time, tokens per second, accelerator-hours and energy.

Energy is read where the machine exposes a counter, never guessed:
- CPUs, on Linux: RAPL's cumulative counters under ``/sys/class/powercap`` (each package
  domain ``intel-rapl:N``'s ``energy_uj``, in microjoules, wrapping at
  ``max_energy_range_uj``; AMD's are exposed under the same names). Often readable by
  root only: then the record says so;
- NVIDIA GPUs: NVML's ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the
  driver loaded; Volta and newer) through ``pynvml`` (the ``nvidia-ml-py`` package),
  when it is installed and finds devices.

``Meter`` reads every counter it can at the start and at the end of a piece of work.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class RaplDomain:
    """One RAPL package domain: its counter file and where the counter wraps."""

    name: str
    energy: Path
    wraps_at: int

    def read(self) -> int:
        """The counter, microjoules."""
        return int(self.energy.read_text().strip())


def rapl_domains(root: Path = POWERCAP) -> tuple[list[RaplDomain], str | None]:
    """The readable RAPL package domains under ``root`` (sub-domains such as ``core`` are
    inside their package's count and left out), and why there are none when there are none."""
    if not root.is_dir():
        return [], f"no {root} (not Linux, or no powercap driver)"
    domains, refused = [], []
    for folder in sorted(root.glob("intel-rapl:*")):
        if folder.name.count(":") != 1:
            continue
        try:
            name = (folder / "name").read_text().strip() if (folder / "name").exists() else folder.name
            wraps = int((folder / "max_energy_range_uj").read_text().strip())
            domain = RaplDomain(f"{folder.name} ({name})", folder / "energy_uj", wraps)
            domain.read()
        except PermissionError:
            refused.append(folder.name)
            continue
        except (OSError, ValueError) as exc:
            log.info("RAPL domain %s unreadable: %s", folder, exc)
            continue
        domains.append(domain)
    if domains:
        return domains, None
    if refused:
        return [], f"RAPL counters under {root} are readable by root only ({', '.join(refused)})"
    return [], f"no RAPL package domain under {root}"


class Nvml:
    """NVML's energy counters of every visible NVIDIA GPU (``pynvml``)."""

    def __init__(self, pynvml: Any):
        self.pynvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

    @classmethod
    def open(cls) -> tuple[Nvml | None, str | None]:
        """NVML when ``pynvml`` is installed, initialises and reports energy on a device;
        else None and why."""
        try:
            import pynvml
        except ImportError:
            return None, "pynvml is not installed (pip install 'curate[energy]')"
        try:
            pynvml.nvmlInit()
            nvml = cls(pynvml)
            if not nvml.handles:
                pynvml.nvmlShutdown()
                return None, "NVML sees no GPU"
            nvml.read()
        except pynvml.NVMLError as exc:
            return None, f"NVML: {exc}"
        return nvml, None

    def read(self) -> list[int]:
        """Each GPU's energy since the driver loaded, millijoules."""
        return [int(self.pynvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self.handles]

    def close(self) -> None:
        """Release NVML."""
        self.pynvml.nvmlShutdown()


@dataclass
class Measured:
    """What one piece of work spent."""

    wall_seconds: float
    device: str
    """Where it ran: ``cpu`` or a GPU's name."""
    accelerators: int
    """Devices it held: GPUs, or for the CPU the threads torch computes with."""
    accelerator_hours: float
    tokens: int | None = None
    tokens_per_second: float | None = None
    energy_joules: float | None = None
    """Energy the counters measured (every RAPL package, or every GPU); None when none is readable."""
    energy_kwh: float | None = None
    energy_source: str = ""
    """Which counters, or why energy is not measured here."""
    notes: list[str] = field(default_factory=list)


class Meter:
    """Counters read at ``start`` and at ``stop``: time, RAPL and NVML energy."""

    def __init__(self, *, powercap: Path = POWERCAP, nvml: bool = True):
        self.rapl, rapl_why = rapl_domains(powercap)
        self.nvml, nvml_why = Nvml.open() if nvml else (None, "NVML not asked for")
        self.why_not = [w for w in (rapl_why, nvml_why) if w]
        self.started = time.perf_counter()
        self.rapl_start = [d.read() for d in self.rapl]
        self.nvml_start = self.nvml.read() if self.nvml else []

    def stop(self, *, device: str, accelerators: int, tokens: int | None = None) -> Measured:
        """What was spent since the meter started, over ``accelerators`` devices."""
        wall = time.perf_counter() - self.started
        joules, sources = 0.0, []
        if self.rapl:
            for domain, start in zip(self.rapl, self.rapl_start, strict=True):
                end = domain.read()
                joules += ((end - start) % (domain.wraps_at + 1)) / 1e6  # a wrapped counter restarts at 0
            sources.append("RAPL " + ", ".join(d.name for d in self.rapl))
        if self.nvml:
            ends = self.nvml.read()
            joules += sum(end - start for start, end in zip(self.nvml_start, ends, strict=True)) / 1e3
            sources.append(f"NVML, {len(self.nvml.handles)} GPU(s)")
            self.nvml.close()
        measured = bool(sources)
        return Measured(
            wall_seconds=wall, device=device, accelerators=accelerators,
            accelerator_hours=wall * accelerators / 3600, tokens=tokens,
            tokens_per_second=tokens / wall if tokens and wall > 0 else None,
            energy_joules=joules if measured else None, energy_kwh=joules / 3.6e6 if measured else None,
            energy_source="; ".join(sources) if measured else "not measured: " + "; ".join(self.why_not))
