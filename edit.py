"""`python edit.py ...` in a checkout: the `edit` command of `editing_app/commands/edit.py` (installed:
`diffusion-edit`), whose docstring and `--help` give its usage."""

from editing_app.commands.edit import edit, main

__all__ = ["edit", "main"]

if __name__ == "__main__":
    main()
