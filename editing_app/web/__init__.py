"""The local web app (`python app.py`, `make app`): upload, mask, invert or fine-tune once, then
edit with sliders from the artifact kept in memory. Needs the `app` extra (Gradio); nothing
outside this package imports it.

- `settings`: `app.*` (address, users, session root, upload limit) and the loopback rule;
- `uploads`: uploads checked as the command line checks its files, copied into the session;
- `methods`: what each method trains once and edits with (the demo's settings on the demo model);
- `session`: a browser session's folder and artifacts, the train-once-edit-many run;
- `jobs`: one job per device, training progress and cancel;
- `page`: the Gradio page; `server`: starting it.
"""
