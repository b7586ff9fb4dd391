"""Step handlers (the Tasks of musicvid_core/workflow/workflow.asl.json) and the embedded runner that executes it."""
