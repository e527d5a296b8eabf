"""`make demo`: every editing method on a shipped example image, offline, on a CPU.

    python demo.py [--base-model demo|tiny] [--output demo_output] [--quick]

See `editing_app/commands/demo.py`; `diffusion-edit-demo` runs the same from an installed package.
"""

import sys

from editing_app.commands.demo import main

if __name__ == "__main__":
    sys.exit(main())
