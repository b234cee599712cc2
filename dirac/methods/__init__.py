"""Method families: what is trained (one subpackage per family), apart from the tasks that judge them."""

from dirac.methods.base import Method

__all__ = ["Method"]
