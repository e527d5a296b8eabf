"""Edit an image with a base model and (for some methods) the artifacts of train.py.

    python edit.py method=imagic           base_model=B checkpoint_dir=D output_dir=O method.eta=0.7
    python edit.py method=null_text_p2p    base_model=B checkpoint_dir=D target_prompt=T output_dir=O
    python edit.py method=direct_inversion base_model=B image=IMG target_prompt=T output_dir=O
    python edit.py method=blended          base_model=B image=IMG mask=MASK target_prompt=T output_dir=O

Writes O/edit.png (the first/best result), O/samples/ (all results, when several), O/grid.png
(input beside the results, labelled) and O/config.yaml. Never imports Lightning. O is checked
writable and locked before any work (one run per folder); in a multirun (`-m`) job N writes O/N.
"""

from editing_app.commands.edit import edit, main

__all__ = ["edit", "main"]

if __name__ == "__main__":
    main()
