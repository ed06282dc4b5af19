"""vidrnn's LightningCLI: ``vidrnn fit|validate|test|predict``, configs in YAML, the data module wired to the model.

Two tasks share the commands. A config says which one it is with a top-level ``task:`` key (``classification``, the
default, or ``tracking``); ``--task`` on the command line says it too. Each task has its own model, data module, links
and CLI class; what both share is one class beneath them. In the order a command meets them:
:mod:`~vidrnn.task_cli.entry` (which task a command line asks for; the entry point),
:mod:`~vidrnn.task_cli.classification` and :mod:`~vidrnn.task_cli.tracking` (each task's CLI),
:mod:`~vidrnn.task_cli.tracking_scores` (a tracker's test sequences tracked online and scored),
:mod:`~vidrnn.task_cli.commands` (what both tasks' commands share) and :mod:`~vidrnn.task_cli.refusals`
(command lines and settings ended as usage errors before anything slow).
"""
