"""How rollouts look to a person: the `get rollout` tree, the `list rollouts` table, status lines.

Pure functions over raw objects, shared by the faces (CLI, demo, dashboard); no I/O.
"""
