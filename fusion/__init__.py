"""The fusion engine: pure async Python, never imports Django.

Everything the workbench does with models goes through here: providers speak the wire
protocols, strategies decide what the members and the judge are asked, and the engine
fans out, retries, enforces budgets and emits the typed events of a run.
"""
