"""Step handlers (the Tasks of infra/workflow.asl.json) and the embedded runner that executes it."""
