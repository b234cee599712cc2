"""Tasks: how a method is judged (restoration now; generation and compression plug in here)."""

from dirac.tasks.base import Task
from dirac.tasks.restoration import CurveSpec, RestorationTask

__all__ = ["CurveSpec", "RestorationTask", "Task"]
