"""Task networks (one builder for every method) and the supervised ``TaskModule``.

``syn2real.tasks.TaskModule`` is source-only training, the target oracle and the schedules' fine-tuning; every
adapter and generalizer evaluates through :class:`TaskEvaluation`.
"""

from syn2real.tasks.module import TaskEvaluation, TaskModule
from syn2real.tasks.networks import Task, TaskNetwork, TaskNetworkSpec, build_task_network
from syn2real.tasks.weights import load_task_weights, task_state_prefix
