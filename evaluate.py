"""`python evaluate.py ...` in a checkout: the `evaluate` command of `editing_app/commands/evaluate.py` (installed:
`diffusion-edit-evaluate`), whose docstring and `--help` give its usage."""

from editing_app.commands.evaluate import AllCasesFailed, evaluate, main

__all__ = ["AllCasesFailed", "evaluate", "main"]

if __name__ == "__main__":
    main()
