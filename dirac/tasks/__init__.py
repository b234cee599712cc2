"""Tasks: how a method is judged (restoration now; generation and compression plug in here)."""

from dirac.tasks.base import Task
from dirac.tasks.denoising import DenoisingTask
from dirac.tasks.restoration import CurveSpec, RestorationTask

__all__ = ["CurveSpec", "DenoisingTask", "RestorationTask", "Task"]
