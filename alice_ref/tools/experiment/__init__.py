"""``alice-ref experiment``: the paper's experiment scripts as presets (methods, naq, power-law).

Modules: :mod:`.models` (the masked ResNet-18 and its reduced-scale variant), :mod:`.cifar`
(CIFAR-10 python batches from a local directory), :mod:`.adahessian` (T3),
:mod:`.protocol` (methods, schedules, the resumable run), :mod:`.command` (the command line).
"""

from .command import HELP, add_arguments, main, register, run

__all__ = ["HELP", "add_arguments", "main", "register", "run"]
