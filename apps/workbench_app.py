"""``python -m apps.workbench_app``: the main app, same as ``workbench serve``."""
from workbench.cli import main

if __name__ == "__main__":
    import sys

    sys.argv = [sys.argv[0], "serve", *sys.argv[1:]]
    main()
