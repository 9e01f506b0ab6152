"""Measured energy: RAPL counters read from a powercap folder (a fake one here: this machine
exposes none), NVML through a stand-in of pynvml's functions (no GPU here)."""

from __future__ import annotations

import sys
import types

from curate.plan.measure import Meter, rapl_domains


def write_domain(root, name, label, energy, wraps=262_143_328_850):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "name").write_text(f"{label}\n")
    (folder / "energy_uj").write_text(f"{energy}\n")
    (folder / "max_energy_range_uj").write_text(f"{wraps}\n")
    return folder / "energy_uj"


def test_rapl_sums_the_packages_leaves_out_their_subdomains_and_survives_a_wrap(tmp_path):
    package0 = write_domain(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    package1 = write_domain(tmp_path, "intel-rapl:1", "package-1", 999_000_000, wraps=1_000_000_000)
    core = write_domain(tmp_path, "intel-rapl:0:0", "core", 1_000)
    domains, why = rapl_domains(tmp_path)
    assert why is None
    assert [d.name for d in domains] == ["intel-rapl:0 (package-0)", "intel-rapl:1 (package-1)"]
    meter = Meter(powercap=tmp_path, nvml=False)
    package0.write_text("7000000\n")  # +2 J
    package1.write_text("500000\n")  # wrapped: +1 J up to the wrap, +0.5 J after
    core.write_text("9000000\n")  # inside package-0's count: not added again
    measured = meter.stop(device="cpu", accelerators=2, tokens=100)
    assert abs(measured.energy_joules - 3.5000001) < 1e-3
    assert measured.energy_kwh == measured.energy_joules / 3.6e6
    assert measured.energy_source.startswith("RAPL intel-rapl:0 (package-0), intel-rapl:1")
    assert measured.tokens_per_second == 100 / measured.wall_seconds
    assert measured.accelerator_hours == measured.wall_seconds * 2 / 3600


def test_without_counters_the_record_says_why_energy_is_not_measured(tmp_path):
    measured = Meter(powercap=tmp_path / "absent", nvml=False).stop(device="cpu", accelerators=1)
    assert measured.energy_joules is None and measured.energy_kwh is None
    assert "not measured" in measured.energy_source and "absent" in measured.energy_source
    assert measured.tokens is None and measured.tokens_per_second is None


def test_root_only_rapl_counters_are_said_so(tmp_path, monkeypatch):
    write_domain(tmp_path, "intel-rapl:0", "package-0", 1)
    from curate.plan import measure

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(measure.RaplDomain, "read", refuse)
    domains, why = rapl_domains(tmp_path)
    assert domains == [] and "root only" in why


def fake_pynvml(energies):
    """pynvml's functions as nvidia-ml-py defines them (nvmlDeviceGetTotalEnergyConsumption
    returns millijoules, a c_uint64)."""
    module = types.ModuleType("pynvml")
    calls = {"shutdown": 0}

    class NVMLError(Exception):
        pass

    module.NVMLError = NVMLError
    module.nvmlInit = lambda: None
    module.nvmlShutdown = lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1)
    module.nvmlDeviceGetCount = lambda: len(energies)
    module.nvmlDeviceGetHandleByIndex = lambda i: i
    module.nvmlDeviceGetTotalEnergyConsumption = lambda handle: energies[handle]
    return module, calls


def test_nvml_adds_the_energy_of_every_gpu(tmp_path, monkeypatch):
    energies = [10_000, 20_000]
    module, calls = fake_pynvml(energies)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    meter = Meter(powercap=tmp_path / "absent")
    energies[0] += 1_500_000  # 1.5 kJ
    energies[1] += 500_000
    measured = meter.stop(device="NVIDIA H100 80GB HBM3", accelerators=2)
    assert measured.energy_joules == 2000.0
    assert measured.energy_source == "NVML, 2 GPU(s)" and calls["shutdown"] == 1


def test_an_nvml_error_means_no_gpu_energy(tmp_path, monkeypatch):
    module, _ = fake_pynvml([0])

    def broken():
        raise module.NVMLError("Driver Not Loaded")

    module.nvmlInit = broken
    monkeypatch.setitem(sys.modules, "pynvml", module)
    measured = Meter(powercap=tmp_path / "absent").stop(device="cpu", accelerators=1)
    assert measured.energy_joules is None and "NVML: Driver Not Loaded" in measured.energy_source
