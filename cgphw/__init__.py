"""cgphw: evolve 8-bit circuits that compute int8 network weights, as verified hardware."""
from cgphw.errors import UserError
from cgphw.task import Task, load_task

__all__ = ["Task", "UserError", "load_task"]
