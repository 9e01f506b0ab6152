"""What a release costs to train and evaluate: planned before (``curate plan``), measured after.

- ``curate.plan.estimate``: FLOPs, accelerator-hours, wall time, energy, money and
  emissions of training on a release (SFT, DPO) and of an evaluation, every figure beside
  its assumption; the accelerator table (``accelerators.yaml``, overridable);
- ``curate.plan.measure``: what a run spent: wall time, tokens per second,
  accelerator-hours and energy where the machine can measure it (RAPL on Linux CPUs,
  NVML on NVIDIA GPUs).

Imports no model library until a model's config has to be read.
"""
