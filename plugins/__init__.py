"""First-party plugins. Each registers through the ``workbench.plugins`` entry points, like any third-party one."""
