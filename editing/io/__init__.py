"""What goes in and out of an edit: images, masks, artifacts, the edit inputs and the written outputs."""
