"""`python app.py ...` in a checkout: the web app of `editing_app/commands/app.py` (installed:
`diffusion-edit-app`), whose docstring and `--help` give its usage."""

from editing_app.commands.app import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
